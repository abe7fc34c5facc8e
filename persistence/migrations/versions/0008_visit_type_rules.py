"""Visit type rules (API.md, "Buffers, daily limits..."): buffers before and after a visit and a daily limit.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("visit_types", sa.Column("buffer_before_minutes", sa.Integer, nullable=False, server_default="0"))
    op.add_column("visit_types", sa.Column("buffer_after_minutes", sa.Integer, nullable=False, server_default="0"))
    op.add_column("visit_types", sa.Column("max_per_day", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("visit_types", "max_per_day")
    op.drop_column("visit_types", "buffer_after_minutes")
    op.drop_column("visit_types", "buffer_before_minutes")
