"""orders keep their resource specification; the ledger records which chain and token it
follows; credit no longer freezes a plan

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watcher.adapters.ledger.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chains",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("genesis_hash", sa.String(length=66), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=False),
        sa.Column("created_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_chains")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_orders_chain_id_reorged"), ["chain_id", "reorged"], unique=False
        )
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.drop_column("plan")


def downgrade() -> None:
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("plan", sa.String(length=64), nullable=False, server_default="t3.micro")
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_chain_id_reorged"))
        batch_op.drop_column("resource")
    op.drop_table("chains")
