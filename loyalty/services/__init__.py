"""Service functions: every write and read of points.

Each takes a unit of work (:mod:`loyalty.services.uow`) to join, or a database to run in a
unit of work of its own. The SDK, the admin console, the Stripe webhook and the jobs all call
these; none of them holds points logic of its own.
"""

from loyalty.services.adjustments import adjust_points
from loyalty.services.approvals import (
    approve_adjustment,
    get_adjustment_request,
    list_adjustment_requests,
    reject_adjustment,
    request_adjustment,
)
from loyalty.services.audit import (
    audit,
    list_audit,
    publish_rules_audited,
    record_audit,
    update_program_audited,
)
from loyalty.services.clearing import clear_due_year_ends, clear_year_end
from loyalty.services.earning import (
    earn_action,
    earn_purchase,
    price_purchase,
    quote_purchase,
)
from loyalty.services.expiry import expire_due
from loyalty.services.forecast import forecast
from loyalty.services.maturation import mature_pending
from loyalty.services.members import (
    enrol_member,
    get_member,
    link_stripe_customer,
    set_member_status,
)
from loyalty.services.programs import (
    create_program,
    get_program,
    list_rule_versions,
    publish_rules,
    rules_in_force,
    update_program,
)
from loyalty.services.queries import balance, history
from loyalty.services.redemption import (
    capture_hold,
    expire_holds,
    hold_points,
    quote_redemption,
    release_hold,
)
from loyalty.services.reminders import (
    mark_delivered,
    mark_failed,
    on_reminder,
    pending_notifications,
    send_reminders,
)
from loyalty.services.reversals import (
    close_dispute,
    complete_refund,
    fail_refund,
    open_dispute,
    refund_order,
)
from loyalty.services.reward_redemptions import (
    advance_fulfilment,
    advance_many,
    cancel_redemption,
    get_redemption,
    list_redemptions,
    redeem_reward,
)
from loyalty.services.rewards import (
    add_codes,
    create_reward,
    generate_reward_codes,
    get_reward,
    list_catalog,
    list_rewards,
    publish_reward_terms,
    restock_reward,
    set_reward_retired,
)
from loyalty.services.risk_cases import (
    assign_risk_case,
    list_risk_cases,
    release_member_hold,
    resolve_risk_case,
    risk_case,
)
from loyalty.services.risk_rules import (
    freeze_member,
    publish_risk_rules,
    risk_rule_versions_of,
    risk_rules,
    unfreeze_member,
)
from loyalty.services.risk_scan import scan_risk
from loyalty.services.tier_audit import (
    cancel_tiers_audited,
    place_members_audited,
    publish_tiers_audited,
    set_member_tier_audited,
)
from loyalty.services.tier_sweep import (
    evaluate_tiers,
    place_members,
    preview_tiers,
    tier_distribution,
    tier_forecast,
)
from loyalty.services.tiers import (
    cancel_tiers,
    list_tier_versions,
    publish_tiers,
    set_member_tier,
    tier_history,
    tier_progress,
    tiers_in_force,
)
from loyalty.services.transfers import transfer_points
from loyalty.services.uow import UnitOfWork, rolled_back, unit_of_work
from loyalty.services.verify import verify_ledger
from loyalty.services.vouchers import consume_voucher, release_voucher, validate_voucher

__all__ = [
    "UnitOfWork",
    "add_codes",
    "adjust_points",
    "advance_fulfilment",
    "advance_many",
    "approve_adjustment",
    "assign_risk_case",
    "audit",
    "balance",
    "cancel_redemption",
    "cancel_tiers",
    "cancel_tiers_audited",
    "capture_hold",
    "clear_due_year_ends",
    "clear_year_end",
    "close_dispute",
    "complete_refund",
    "consume_voucher",
    "create_program",
    "create_reward",
    "earn_action",
    "earn_purchase",
    "enrol_member",
    "evaluate_tiers",
    "expire_due",
    "expire_holds",
    "fail_refund",
    "forecast",
    "freeze_member",
    "generate_reward_codes",
    "get_adjustment_request",
    "get_member",
    "get_program",
    "get_redemption",
    "get_reward",
    "history",
    "hold_points",
    "link_stripe_customer",
    "list_adjustment_requests",
    "list_audit",
    "list_catalog",
    "list_redemptions",
    "list_rewards",
    "list_risk_cases",
    "list_rule_versions",
    "list_tier_versions",
    "mark_delivered",
    "mark_failed",
    "mature_pending",
    "on_reminder",
    "open_dispute",
    "pending_notifications",
    "place_members",
    "place_members_audited",
    "preview_tiers",
    "price_purchase",
    "publish_reward_terms",
    "publish_risk_rules",
    "publish_rules",
    "publish_rules_audited",
    "publish_tiers",
    "publish_tiers_audited",
    "quote_purchase",
    "quote_redemption",
    "record_audit",
    "redeem_reward",
    "refund_order",
    "reject_adjustment",
    "release_hold",
    "release_member_hold",
    "release_voucher",
    "request_adjustment",
    "resolve_risk_case",
    "restock_reward",
    "risk_case",
    "risk_rule_versions_of",
    "risk_rules",
    "rolled_back",
    "rules_in_force",
    "scan_risk",
    "send_reminders",
    "set_member_status",
    "set_member_tier",
    "set_member_tier_audited",
    "set_reward_retired",
    "tier_distribution",
    "tier_forecast",
    "tier_history",
    "tier_progress",
    "tiers_in_force",
    "transfer_points",
    "unfreeze_member",
    "unit_of_work",
    "update_program",
    "update_program_audited",
    "validate_voucher",
    "verify_ledger",
]
