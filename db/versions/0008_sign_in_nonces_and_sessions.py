"""sign-in with Ethereum: the nonces handed out (each good once, until it expires) and the
wallets' sessions (only a hash of each token)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watcher.adapters.ledger.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_nonces",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("expires_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("used_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_sign_in_nonces")),
    )
    op.create_index(op.f("ix_sign_in_nonces_expires_at"), "sign_in_nonces", ["expires_at"])
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("expires_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("ended_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_address"), "sessions", ["address"])
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_address"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_sign_in_nonces_expires_at"), table_name="sign_in_nonces")
    op.drop_table("sign_in_nonces")
