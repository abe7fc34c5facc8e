"""Notifications: one row per (appointment, kind, offset, version).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("appointment_id", sa.String(64), nullable=False, index=True),
        sa.Column("practice_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("offset_s", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at_ms", sa.BigInteger, nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("lease_until_ms", sa.BigInteger),
        sa.Column("enqueued_at_ms", sa.BigInteger),
        sa.Column("rescheduled", sa.Integer, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_notifications_status_due", "notifications", ["status", "due_at_ms"])


def downgrade() -> None:
    op.drop_table("notifications")
