"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 05:51:24.102044

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "programs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("rounding", sa.String(length=16), nullable=False),
        sa.Column("points_per_unit", sa.Integer(), nullable=False),
        sa.Column("redeem_max_share_bp", sa.Integer(), nullable=False),
        sa.Column("redeem_min_points", sa.Integer(), nullable=False),
        sa.Column("redeem_min_order_minor", sa.BigInteger(), nullable=False),
        sa.Column("hold_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "hold_timeout_seconds > 0", name=op.f("ck_programs_hold_timeout_positive")
        ),
        sa.CheckConstraint(
            "points_per_unit > 0", name=op.f("ck_programs_points_per_unit_positive")
        ),
        sa.CheckConstraint(
            "redeem_max_share_bp BETWEEN 0 AND 10000",
            name=op.f("ck_programs_redeem_max_share_bp_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
        sa.UniqueConstraint("code", name=op.f("uq_programs_code")),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("stripe_customer_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("available", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pending", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("frozen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("debt", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lifetime_earned", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cap_day_key", sa.String(length=10), nullable=True),
        sa.Column("cap_day_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cap_month_key", sa.String(length=7), nullable=True),
        sa.Column("cap_month_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cap_year_key", sa.String(length=4), nullable=True),
        sa.Column("cap_year_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "available >= 0 AND pending >= 0 AND held >= 0 AND frozen >= 0 AND debt >= 0",
            name=op.f("ck_members_balances_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_members_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint(
            "program_id", "external_id", name=op.f("uq_members_program_id_external_id")
        ),
        sa.UniqueConstraint(
            "program_id",
            "stripe_customer_id",
            name=op.f("uq_members_program_id_stripe_customer_id"),
        ),
    )
    op.create_index("ix_members_email", "members", ["email"], unique=False)
    op.create_table(
        "program_issuance",
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("issued", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_program_issuance_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", "day", name=op.f("pk_program_issuance")),
    )
    op.create_table(
        "rule_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_rule_versions_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_versions")),
        sa.UniqueConstraint(
            "program_id", "version", name=op.f("uq_rule_versions_program_id_version")
        ),
    )
    op.create_index(
        "ix_rule_versions_program_effective",
        "rule_versions",
        ["program_id", "effective_from"],
        unique=False,
    )
    op.create_table(
        "operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_operations_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_operations_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sa.UniqueConstraint("program_id", "key", name=op.f("uq_operations_program_id_key")),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column(
            "operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), nullable=False),
        sa.Column("order_total_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_holds_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["operations.id"], name=op.f("fk_holds_operation_id_operations")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_holds_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
        sa.UniqueConstraint("program_id", "order_id", name=op.f("uq_holds_program_id_order_id")),
    )
    op.create_index(
        "ix_holds_active_expiry",
        "holds",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column(
            "operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("available", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pending", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("frozen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("earned_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("matures_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expired_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "available >= 0 AND pending >= 0 AND held >= 0 AND frozen >= 0",
            name=op.f("ck_lots_buckets_not_negative"),
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_lots_points_positive")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_lots_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["operations.id"], name=op.f("fk_lots_operation_id_operations")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_lots_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lots")),
    )
    op.create_index(
        "ix_lots_due_expiry",
        "lots",
        ["expires_at"],
        unique=False,
        sqlite_where=sa.text("expired_at IS NULL"),
        postgresql_where=sa.text("expired_at IS NULL"),
    )
    op.create_index(
        "ix_lots_due_maturity",
        "lots",
        ["matures_at"],
        unique=False,
        sqlite_where=sa.text("pending > 0"),
        postgresql_where=sa.text("pending > 0"),
    )
    op.create_index("ix_lots_member_expires", "lots", ["member_id", "expires_at"], unique=False)
    op.create_table(
        "earnings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column(
            "operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("points_requested", sa.BigInteger(), nullable=False),
        sa.Column("points_granted", sa.BigInteger(), nullable=False),
        sa.Column("capped_by", sa.String(length=32), nullable=True),
        sa.Column("rule_version_id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_earnings_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_earnings_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["operations.id"], name=op.f("fk_earnings_operation_id_operations")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_earnings_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["rule_version_id"],
            ["rule_versions.id"],
            name=op.f("fk_earnings_rule_version_id_rule_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_earnings")),
        sa.UniqueConstraint("program_id", "order_id", name=op.f("uq_earnings_program_id_order_id")),
    )
    op.create_index(
        "ix_earnings_member_action", "earnings", ["member_id", "action", "created_at"], unique=False
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column(
            "operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("available_delta", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("pending_delta", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held_delta", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("frozen_delta", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("debt_delta", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.id"], name=op.f("fk_entries_lot_id_lots")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_entries_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"], ["operations.id"], name=op.f("fk_entries_operation_id_operations")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_entries_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
    )
    op.create_index("ix_entries_lot_id", "entries", ["lot_id"], unique=False)
    op.create_index("ix_entries_member_id", "entries", ["member_id", "id"], unique=False)
    op.create_index("ix_entries_operation_id", "entries", ["operation_id"], unique=False)
    op.create_index(
        "uq_entries_one_expiry_per_lot",
        "entries",
        ["lot_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'expire'"),
        postgresql_where=sa.text("kind = 'expire'"),
    )


def downgrade() -> None:

    op.drop_index(
        "uq_entries_one_expiry_per_lot",
        table_name="entries",
        sqlite_where=sa.text("kind = 'expire'"),
        postgresql_where=sa.text("kind = 'expire'"),
    )
    op.drop_index("ix_entries_operation_id", table_name="entries")
    op.drop_index("ix_entries_member_id", table_name="entries")
    op.drop_index("ix_entries_lot_id", table_name="entries")
    op.drop_table("entries")
    op.drop_index("ix_earnings_member_action", table_name="earnings")
    op.drop_table("earnings")
    op.drop_index("ix_lots_member_expires", table_name="lots")
    op.drop_index(
        "ix_lots_due_maturity",
        table_name="lots",
        sqlite_where=sa.text("pending > 0"),
        postgresql_where=sa.text("pending > 0"),
    )
    op.drop_index(
        "ix_lots_due_expiry",
        table_name="lots",
        sqlite_where=sa.text("expired_at IS NULL"),
        postgresql_where=sa.text("expired_at IS NULL"),
    )
    op.drop_table("lots")
    op.drop_index(
        "ix_holds_active_expiry",
        table_name="holds",
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.drop_table("holds")
    op.drop_table("operations")
    op.drop_index("ix_rule_versions_program_effective", table_name="rule_versions")
    op.drop_table("rule_versions")
    op.drop_table("program_issuance")
    op.drop_index("ix_members_email", table_name="members")
    op.drop_table("members")
    op.drop_table("programs")
