"""lease charges: each extension or renewal of a lease paid from credit, with the ledger's
block when it was taken (a reorg below it may have taken the payments that credit came
from, and charges it again or undoes it)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from watcher.adapters.ledger.types import TokenAmount, UtcDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lease_charges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("payer", sa.String(length=42), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("amount", TokenAmount(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name=op.f("fk_lease_charges_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lease_charges")),
    )
    op.create_index(
        op.f("ix_lease_charges_chain_id_block_number"),
        "lease_charges",
        ["chain_id", "block_number"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_lease_charges_chain_id_block_number"), table_name="lease_charges")
    op.drop_table("lease_charges")
