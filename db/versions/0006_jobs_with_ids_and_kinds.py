"""jobs with their own ids and kinds: provision_jobs becomes jobs (kind 'launch'), the
workers' lease becomes a claim, at most one pending job per order and kind

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import watcher.adapters.ledger.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state IN ('queued', 'claimed')")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("created_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claim_expires_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name=op.f("fk_jobs_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_state_available_at"), "jobs", ["state", "available_at"])
    op.create_index(op.f("ix_jobs_order_id"), "jobs", ["order_id"])
    op.create_index(
        "uq_jobs_pending_order_kind",
        "jobs",
        ["order_id", "kind"],
        unique=True,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.execute(
        "INSERT INTO jobs (order_id, kind, state, attempts, available_at, created_at, "
        "claimed_by, claim_expires_at, last_error) "
        "SELECT order_id, 'launch', state, attempts, available_at, created_at, lease_owner, "
        "lease_expires_at, last_error FROM provision_jobs"
    )
    op.drop_table("provision_jobs")


def downgrade() -> None:
    op.create_table(
        "provision_jobs",
        sa.Column("order_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("created_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", watcher.adapters.ledger.types.UtcDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.order_id"],
            name=op.f("fk_provision_jobs_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_provision_jobs")),
    )
    op.execute(
        "INSERT INTO provision_jobs (order_id, state, attempts, available_at, created_at, "
        "lease_owner, lease_expires_at, last_error) "
        "SELECT order_id, state, attempts, available_at, created_at, claimed_by, "
        "claim_expires_at, last_error FROM jobs WHERE kind = 'launch'"
    )
    op.drop_table("jobs")
