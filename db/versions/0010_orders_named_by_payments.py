"""orders a payment named: the draft's reference, periods, SSH key and name on the order;
a note on the draft when a payment naming it did not place it

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=66), nullable=True))
        batch_op.add_column(sa.Column("periods", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ssh_key", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=64), nullable=True))
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drafts", schema=None) as batch_op:
        batch_op.drop_column("note")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("name")
        batch_op.drop_column("ssh_key")
        batch_op.drop_column("periods")
        batch_op.drop_column("reference")
