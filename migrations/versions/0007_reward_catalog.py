"""Reward catalog: rewards with versioned terms and stock, redemptions, coupon code pools,
vouchers and the events of fulfilment

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:14:00.539803

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rewards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("stock_added", sa.BigInteger(), nullable=True),
        sa.Column("stock_left", sa.BigInteger(), nullable=True),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('coupon', 'voucher', 'item', 'draw')", name=op.f("ck_rewards_kind_known")
        ),
        sa.CheckConstraint(
            "(stock_added IS NULL) = (stock_left IS NULL)",
            name=op.f("ck_rewards_stock_both_or_none"),
        ),
        sa.CheckConstraint("stock_left >= 0", name=op.f("ck_rewards_stock_not_negative")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_rewards_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
        sa.UniqueConstraint("program_id", "code", name=op.f("uq_rewards_program_id_code")),
    )
    op.create_table(
        "reward_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("effective_from", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_reward_versions_reward_id_rewards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_versions")),
        sa.UniqueConstraint(
            "reward_id", "version", name=op.f("uq_reward_versions_reward_id_version")
        ),
    )
    op.create_table(
        "reward_redemptions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("reward_version_id", sa.Integer(), nullable=False),
        sa.Column(
            "operation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("stock_taken", sa.Integer(), nullable=False),
        sa.Column("stock_returned", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("shipping", sa.JSON(), nullable=True),
        sa.Column("draw", sa.JSON(), nullable=True),
        sa.Column(
            "cancel_operation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('issued', 'packing', 'shipped', 'delivered', 'cancelled')",
            name=op.f("ck_reward_redemptions_status_known"),
        ),
        sa.CheckConstraint(
            "stock_returned <= stock_taken", name=op.f("ck_reward_redemptions_returns_within_taken")
        ),
        sa.ForeignKeyConstraint(
            ["cancel_operation_id"],
            ["operations.id"],
            name=op.f("fk_reward_redemptions_cancel_operation_id_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_reward_redemptions_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_reward_redemptions_operation_id_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["reward_redemptions.id"],
            name=op.f("fk_reward_redemptions_parent_id_reward_redemptions"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_reward_redemptions_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_reward_redemptions_reward_id_rewards")
        ),
        sa.ForeignKeyConstraint(
            ["reward_version_id"],
            ["reward_versions.id"],
            name=op.f("fk_reward_redemptions_reward_version_id_reward_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_redemptions")),
    )
    with op.batch_alter_table("reward_redemptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reward_redemptions_member", ["member_id", "reward_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_reward_redemptions_operation", ["operation_id"], unique=False)
        batch_op.create_index(
            "ix_reward_redemptions_reward", ["reward_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_reward_redemptions_status", ["program_id", "status", "created_at"], unique=False
        )

    op.create_table(
        "reward_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column(
            "redemption_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["redemption_id"],
            ["reward_redemptions.id"],
            name=op.f("fk_reward_codes_redemption_id_reward_redemptions"),
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_reward_codes_reward_id_rewards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_codes")),
        sa.UniqueConstraint("reward_id", "code", name=op.f("uq_reward_codes_reward_id_code")),
    )
    with op.batch_alter_table("reward_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reward_codes_free",
            ["reward_id", "id"],
            unique=False,
            sqlite_where=sa.text("redemption_id IS NULL"),
            postgresql_where=sa.text("redemption_id IS NULL"),
        )
        batch_op.create_index("ix_reward_codes_redemption", ["redemption_id"], unique=False)

    op.create_table(
        "reward_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "redemption_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["redemption_id"],
            ["reward_redemptions.id"],
            name=op.f("fk_reward_events_redemption_id_reward_redemptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_events")),
    )
    with op.batch_alter_table("reward_events", schema=None) as batch_op:
        batch_op.create_index("ix_reward_events_redemption", ["redemption_id", "id"], unique=False)

    op.create_table(
        "vouchers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column(
            "redemption_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("valid_from", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("used_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'used', 'cancelled')", name=op.f("ck_vouchers_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_vouchers_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_vouchers_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["redemption_id"],
            ["reward_redemptions.id"],
            name=op.f("fk_vouchers_redemption_id_reward_redemptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vouchers")),
        sa.UniqueConstraint("program_id", "code", name=op.f("uq_vouchers_program_id_code")),
    )
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.create_index("ix_vouchers_redemption", ["redemption_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_index("ix_vouchers_redemption")

    op.drop_table("vouchers")
    with op.batch_alter_table("reward_events", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_events_redemption")

    op.drop_table("reward_events")
    with op.batch_alter_table("reward_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_codes_redemption")
        batch_op.drop_index(
            "ix_reward_codes_free",
            sqlite_where=sa.text("redemption_id IS NULL"),
            postgresql_where=sa.text("redemption_id IS NULL"),
        )

    op.drop_table("reward_codes")
    with op.batch_alter_table("reward_redemptions", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_redemptions_status")
        batch_op.drop_index("ix_reward_redemptions_reward")
        batch_op.drop_index("ix_reward_redemptions_operation")
        batch_op.drop_index("ix_reward_redemptions_member")

    op.drop_table("reward_redemptions")
    op.drop_table("reward_versions")
    op.drop_table("rewards")
