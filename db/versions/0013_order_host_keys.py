"""an order's SSH host key fingerprints, read from its instance's console once the owner
looks at its access details (owner-only, like its address)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host_keys", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops a column in place. Alembic's batch mode would copy the table,
        # and dropping the old `orders` deletes its jobs through ON DELETE CASCADE.
        op.execute("ALTER TABLE orders DROP COLUMN host_keys")
        return
    op.drop_column("orders", "host_keys")
