"""rule versions: a version scheduled for later can be cancelled before its time

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import loyalty.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rule_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancelled_at", loyalty.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("cancelled_by", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rule_versions", schema=None) as batch_op:
        batch_op.drop_column("cancelled_by")
        batch_op.drop_column("cancelled_at")
