"""Audit chain: the version of each row's canonical form; the key that signs audit cursors.

``hash_version`` is 1 on every row already stored (their hashes stay as they were computed, see
persistence/chain.py) and on rows that code from before this revision still inserts during a rolling
upgrade; the current code writes 2. ``deployment_secrets`` holds a random key made here, once per
database, so every API process of a deployment (and the embedded mode's SQLite file) signs and checks
cursors with the same key without any configuration.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a constant default: PostgreSQL adds the column without rewriting the table, and no UPDATE runs (the
    # append-only triggers stay untouched)
    op.add_column("audit_events", sa.Column("hash_version", sa.SmallInteger, nullable=False, server_default="1"))
    table = op.create_table(
        "deployment_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )
    op.bulk_insert(table, [{"name": "audit_cursor", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("deployment_secrets")
    op.drop_column("audit_events", "hash_version")
