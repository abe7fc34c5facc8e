"""The persister's quarantine (docs/operations.md, "Quarantine"): events the database refused (a DataError or an
IntegrityError: a NUL byte in a name, an overlap the exclusion constraint refuses...) or that cannot be decoded,
set aside raw so that the rest of the stream flows, until `booking reconcile --replay-quarantine` applies them.

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantined_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False),
        sa.Column("entry_id", sa.String(40), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("entity", sa.Text),
        sa.Column("audited", sa.SmallInteger, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("replayed_at_ms", sa.BigInteger),
    )
    op.create_index("ix_quarantine_open", "quarantined_events", ["practice_id", "replayed_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_open", table_name="quarantined_events")
    op.drop_table("quarantined_events")
