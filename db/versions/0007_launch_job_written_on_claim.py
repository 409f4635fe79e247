"""a queued order is its own launch job until a worker first claims it: the follower no
longer writes a jobs row per order, and the workers find queued orders by a partial index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED = sa.text("state = 'queued'")


def upgrade() -> None:
    # Existing launch jobs stay as they are: a jobs row, written or not yet, is claimed
    # the same way.
    op.create_index(
        "ix_orders_queued",
        "orders",
        ["created_at"],
        postgresql_where=QUEUED,
        sqlite_where=QUEUED,
    )


def downgrade() -> None:
    # The older release expects a jobs row for every queued order: write the missing ones.
    op.execute(
        "INSERT INTO jobs (order_id, kind, state, attempts, available_at, created_at) "
        "SELECT order_id, 'launch', 'queued', 0, created_at, created_at FROM orders "
        "WHERE state = 'queued' AND NOT EXISTS (SELECT 1 FROM jobs "
        "WHERE jobs.order_id = orders.order_id AND jobs.kind = 'launch')"
    )
    op.drop_index("ix_orders_queued", table_name="orders")
