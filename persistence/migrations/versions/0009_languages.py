"""Languages (API.md, "... languages"): a practice's language and the patient's language of an appointment.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("practices", sa.Column("language", sa.String(8), nullable=False, server_default="en"))
    op.add_column("appointments", sa.Column("patient_language", sa.String(8), nullable=True))


def downgrade() -> None:
    op.drop_column("appointments", "patient_language")
    op.drop_column("practices", "language")
