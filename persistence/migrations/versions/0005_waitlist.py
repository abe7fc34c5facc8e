"""Waitlist entries (docs/waitlist.md): the latest copy of each entry record, upserted newer-only by version.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False),
        sa.Column("visit_type_id", sa.String(64), nullable=False),
        sa.Column("practitioner_id", sa.String(64)),
        sa.Column("from_date", sa.Date, nullable=False),
        sa.Column("to_date", sa.Date, nullable=False),
        sa.Column("weekdays", sa.Text),
        sa.Column("from_time", sa.String(5)),
        sa.Column("to_time", sa.String(5)),
        sa.Column("spans", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("join_order", sa.BigInteger, nullable=False),
        sa.Column("offer_hold_id", sa.String(128)),
        sa.Column("offer_practitioner_id", sa.String(64)),
        sa.Column("offer_start_at", ts),
        sa.Column("offer_end_at", ts),
        sa.Column("offer_expires_ms", sa.BigInteger),
        sa.Column("had", sa.Text, nullable=False),
        sa.Column("appointment_id", sa.String(64)),
        sa.Column("manage_hash", sa.String(64), nullable=False),
        sa.Column("lapsed_ms", sa.BigInteger),
        sa.Column("patient", sa.Text, nullable=False),
        sa.Column("joined_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_waitlist_practice_order", "waitlist_entries", ["practice_id", "join_order"])
    op.create_index("ix_waitlist_status", "waitlist_entries", ["status"])


def downgrade() -> None:
    op.drop_table("waitlist_entries")
