"""orders bought from credit: an order its owner paid for out of credit has no payment of
its own, so its payment columns (tx_hash, log_index) may be empty

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _nullable(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite changes a column's NOT NULL only by copying the table; dropping the old
        # `orders` deletes its jobs through the ON DELETE CASCADE foreign key (the ledger
        # turns foreign keys on, and a migration runs in one transaction, where SQLite
        # cannot turn them off). Keep the jobs aside and put them back.
        op.execute("CREATE TEMP TABLE jobs_kept AS SELECT * FROM jobs")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("tx_hash", existing_type=sa.String(length=66), nullable=nullable)
        batch_op.alter_column("log_index", existing_type=sa.Integer(), nullable=nullable)
    if sqlite:
        op.execute("INSERT OR IGNORE INTO jobs SELECT * FROM jobs_kept")
        op.execute("DROP TABLE jobs_kept")


def upgrade() -> None:
    _nullable(True)


def downgrade() -> None:
    # The older release has no orders without a payment: refuse rather than invent one.
    orphans = op.get_bind().execute(sa.text("SELECT count(*) FROM orders WHERE tx_hash IS NULL"))
    if orphans.scalar_one():
        raise RuntimeError(
            "orders bought from credit exist; the release before 0012 cannot hold them"
        )
    _nullable(False)
