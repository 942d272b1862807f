"""HTTP API: server keys (hashed, scoped, expiring, revocable) and allowed browser origins

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_api_keys_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index("ix_api_keys_program", "api_keys", ["program_id", "created_at"], unique=False)
    op.create_table(
        "api_origins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("created_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_api_origins_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_origins")),
        sa.UniqueConstraint("program_id", "origin", name=op.f("uq_api_origins_program_id_origin")),
    )


def downgrade() -> None:
    op.drop_table("api_origins")
    op.drop_index("ix_api_keys_program", table_name="api_keys")
    op.drop_table("api_keys")
