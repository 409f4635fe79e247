"""where the buyer reaches an order's resource: its public IP and DNS name, recorded when
it runs

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_ip", sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column("public_dns", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("public_dns")
        batch_op.drop_column("public_ip")
