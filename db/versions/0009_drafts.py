"""drafted orders: plan, periods, SSH key and name with a reference and a quote, before
they are paid for

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watcher.adapters.ledger.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drafts",
        sa.Column("reference", sa.String(length=66), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(length=42), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("unit_price", watcher.adapters.ledger.types.TokenAmount(), nullable=False),
        sa.Column("price", watcher.adapters.ledger.types.TokenAmount(), nullable=False),
        sa.Column("ssh_key", sa.Text(), nullable=False),
        sa.Column("ssh_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("expires_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_drafts")),
    )
    op.create_index(op.f("ix_drafts_chain_id_owner"), "drafts", ["chain_id", "owner"])


def downgrade() -> None:
    op.drop_index(op.f("ix_drafts_chain_id_owner"), table_name="drafts")
    op.drop_table("drafts")
