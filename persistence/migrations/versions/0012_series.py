"""Series (engine/series.py): booked series and their occurrences, so that reconciliation rebuilds them.

Revision ID: 0012_series
Revises: 0011 (0011_resources.py)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_series"
down_revision = "0011"  # 0011_resources.py (its revision id is "0011")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False, index=True),
        sa.Column("practitioner_id", sa.String(64), nullable=False),
        sa.Column("visit_type_id", sa.String(64), nullable=False),
        sa.Column("every_days", sa.SmallInteger, nullable=False),
        sa.Column("count", sa.SmallInteger, nullable=False),
        sa.Column("manage_hash", sa.String(64), nullable=False),
        sa.Column("booked_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "series_occurrences",
        sa.Column("appointment_id", sa.String(64), primary_key=True),
        sa.Column("series_id", sa.String(128), nullable=False, index=True),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("hold_id", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("series_occurrences")
    op.drop_table("series")
