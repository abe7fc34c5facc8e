"""App keys (consumer booking apps' backends, API.md "App keys"), hashes only: durable like the staff keys, so a
Redis that lost its data gets them back from reconciliation, and a revoked one stays revoked.

Revision ID: 0010
Revises: 0007 (0008 and 0009 were being written beside this one: the merge re-chains it after them)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("practice_ids", sa.Text),  # JSON list of practice ids, or null: every practice
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger),
    )


def downgrade() -> None:
    op.drop_table("app_keys")
