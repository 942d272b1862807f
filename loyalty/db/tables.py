"""The table registry: every table of the schema as a SQLAlchemy Core ``Table``, named once.

Services build their statements from these handles; the ORM classes in
:mod:`loyalty.db.models` define the schema (and Alembic's migrations follow them), but the
hot paths never load ORM objects.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from loyalty.db.models import (
    AdjustmentRequest,
    AdminUser,
    ApiKey,
    ApiOrigin,
    AuditEntry,
    Clearing,
    Earning,
    EarningPart,
    EmailSettings,
    Entry,
    Hold,
    JobRun,
    Lot,
    Member,
    Notification,
    Operation,
    OutboxEvent,
    Program,
    ProgramIssuance,
    Reversal,
    Reward,
    RewardCode,
    RewardEvent,
    RewardRedemption,
    RewardVersion,
    RiskCase,
    RiskRuleVersion,
    RuleVersion,
    StripeEvent,
    TierChange,
    TierQualifying,
    TierVersion,
    Transfer,
    Voucher,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

programs = cast(Table, Program.__table__)
rule_versions = cast(Table, RuleVersion.__table__)
members = cast(Table, Member.__table__)
operations = cast(Table, Operation.__table__)
lots = cast(Table, Lot.__table__)
entries = cast(Table, Entry.__table__)
earnings = cast(Table, Earning.__table__)
earning_parts = cast(Table, EarningPart.__table__)
holds = cast(Table, Hold.__table__)
issuance = cast(Table, ProgramIssuance.__table__)
reversals = cast(Table, Reversal.__table__)
transfers = cast(Table, Transfer.__table__)
clearings = cast(Table, Clearing.__table__)
notifications = cast(Table, Notification.__table__)
stripe_events = cast(Table, StripeEvent.__table__)
job_runs = cast(Table, JobRun.__table__)
admin_users = cast(Table, AdminUser.__table__)
audit_log = cast(Table, AuditEntry.__table__)
adjustment_requests = cast(Table, AdjustmentRequest.__table__)
api_keys = cast(Table, ApiKey.__table__)
api_origins = cast(Table, ApiOrigin.__table__)
rewards = cast(Table, Reward.__table__)
reward_versions = cast(Table, RewardVersion.__table__)
reward_redemptions = cast(Table, RewardRedemption.__table__)
reward_codes = cast(Table, RewardCode.__table__)
vouchers = cast(Table, Voucher.__table__)
reward_events = cast(Table, RewardEvent.__table__)
tier_versions = cast(Table, TierVersion.__table__)
tier_qualifying = cast(Table, TierQualifying.__table__)
tier_changes = cast(Table, TierChange.__table__)
events = cast(Table, OutboxEvent.__table__)
webhook_endpoints = cast(Table, WebhookEndpoint.__table__)
webhook_deliveries = cast(Table, WebhookDelivery.__table__)
webhook_attempts = cast(Table, WebhookAttempt.__table__)
email_settings = cast(Table, EmailSettings.__table__)
risk_rule_versions = cast(Table, RiskRuleVersion.__table__)
risk_cases = cast(Table, RiskCase.__table__)
