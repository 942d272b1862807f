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
from loyalty.services.transfers import transfer_points
from loyalty.services.uow import UnitOfWork, rolled_back, unit_of_work
from loyalty.services.verify import verify_ledger

__all__ = [
    "UnitOfWork",
    "adjust_points",
    "approve_adjustment",
    "audit",
    "balance",
    "capture_hold",
    "clear_due_year_ends",
    "clear_year_end",
    "close_dispute",
    "complete_refund",
    "create_program",
    "earn_action",
    "earn_purchase",
    "enrol_member",
    "expire_due",
    "expire_holds",
    "fail_refund",
    "forecast",
    "get_adjustment_request",
    "get_member",
    "get_program",
    "history",
    "hold_points",
    "link_stripe_customer",
    "list_adjustment_requests",
    "list_audit",
    "list_rule_versions",
    "mark_delivered",
    "mark_failed",
    "mature_pending",
    "on_reminder",
    "open_dispute",
    "pending_notifications",
    "price_purchase",
    "publish_rules",
    "publish_rules_audited",
    "quote_purchase",
    "quote_redemption",
    "record_audit",
    "refund_order",
    "reject_adjustment",
    "release_hold",
    "request_adjustment",
    "rolled_back",
    "rules_in_force",
    "send_reminders",
    "set_member_status",
    "transfer_points",
    "unit_of_work",
    "update_program",
    "update_program_audited",
    "verify_ledger",
]
