"""every order is a lease: the plan's lease terms kept with the order (and its draft), and
the lease's state, paid-until and grace-until times, the warnings sent, auto-renew, and the
next moment the scheduler must look at it (indexed, for the leases that are due)

Orders recorded before this migration keep no terms: they were sold without an end and
never expire.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from watcher.adapters.ledger.types import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = sa.text("due_at IS NOT NULL")
COLUMNS = (
    ("lease_terms", sa.Text()),
    ("lease_state", sa.String(length=16)),
    ("paid_until", UtcDateTime()),
    ("grace_until", UtcDateTime()),
    ("due_at", UtcDateTime()),
    ("warned", sa.Integer()),
    ("auto_renew", sa.Boolean()),
    ("cancelled", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_terms", sa.Text(), nullable=True))
    op.create_index("ix_orders_due", "orders", ["due_at"], postgresql_where=DUE, sqlite_where=DUE)


def downgrade() -> None:
    op.drop_index("ix_orders_due", table_name="orders")
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.drop_column("lease_terms")
    if op.get_bind().dialect.name == "sqlite":
        # In place (SQLite 3.35+): a batch copy of `orders` would delete its jobs through
        # the ON DELETE CASCADE.
        for name, _ in reversed(COLUMNS):
            op.execute(f"ALTER TABLE orders DROP COLUMN {name}")
        return
    for name, _ in reversed(COLUMNS):
        op.drop_column("orders", name)
