"""Rooms and equipment (API.md, "Buffers, daily limits, shared rooms and equipment..."): the resources of each
practice with their closures, and the resources each visit type needs.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("closures", sa.Text, nullable=False, server_default="[]"),  # the Closures as JSON
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("visit_types", sa.Column("resource_ids", sa.Text, nullable=False, server_default="[]"))
    # what each appointment claims, so that reconciliation rebuilds its resource claims exactly (NULL: unknown)
    op.add_column("appointments", sa.Column("resource_ids", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("appointments", "resource_ids")
    op.drop_column("visit_types", "resource_ids")
    op.drop_table("resources")
