"""v1 schema: setup records, appointments (exclusion constraint), hold history, append-only audit chain.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> sa.MetaData:
    m = sa.MetaData()
    ts = sa.DateTime(timezone=True)
    sa.Table(
        "practices",
        m,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    sa.Table(
        "practitioners",
        m,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    sa.Table(
        "visit_types",
        m,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False, index=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    sa.Table(
        "schedules",
        m,
        sa.Column("practitioner_id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False, index=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("changed_at_ms", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
    )
    sa.Table(
        "appointments",
        m,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False, index=True),
        sa.Column("practitioner_id", sa.String(64), nullable=False),
        sa.Column("visit_type_id", sa.String(64), nullable=False),
        sa.Column("start_at", ts, nullable=False),
        sa.Column("end_at", ts, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("patient_name", sa.Text, nullable=False),
        sa.Column("patient_email", sa.Text, nullable=False),
        sa.Column("patient_phone", sa.Text),
        sa.Column("manage_hash", sa.String(64), nullable=False),
        sa.Column("hold_id", sa.String(128)),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.Index("ix_appointments_practitioner_start", "practitioner_id", "start_at"),
    )
    sa.Table(
        "holds",
        m,
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False, index=True),
        sa.Column("practitioner_id", sa.String(64), nullable=False),
        sa.Column("visit_type_id", sa.String(64), nullable=False),
        sa.Column("start_at", ts, nullable=False),
        sa.Column("end_at", ts, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("appointment_id", sa.String(64)),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "audit_events",
        m,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("practice_id", sa.String(32), nullable=False),
        sa.Column("chain_index", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("practitioner_id", sa.String(64)),
        sa.Column("hold_id", sa.String(128)),
        sa.Column("appointment_id", sa.String(64)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("practice_id", "chain_index", name="uq_audit_chain"),
        sa.Index("ix_audit_practice_at", "practice_id", "at_ms"),
        sa.Index("ix_audit_appointment", "appointment_id"),
        sa.Index("ix_audit_hold", "hold_id"),
    )
    sa.Table(
        "audit_heads",
        m,
        sa.Column("practice_id", sa.String(32), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("chain_index", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    sa.Table(
        "applied_events",
        m,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    return m


PG = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    """ALTER TABLE appointments ADD CONSTRAINT no_overlapping_bookings EXCLUDE USING gist
       (practitioner_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&) WHERE (status = 'booked')""",
    """CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
    """CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
       FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()""",
]

_OVERLAP = """SELECT RAISE(ABORT, 'no_overlapping_bookings') WHERE NEW.status = 'booked' AND EXISTS (
    SELECT 1 FROM appointments a WHERE a.practitioner_id = NEW.practitioner_id AND a.status = 'booked'
    AND a.id <> NEW.id AND a.start_at < NEW.end_at AND a.end_at > NEW.start_at)"""
SQLITE = [
    f"CREATE TRIGGER appointments_no_overlap_ins BEFORE INSERT ON appointments BEGIN {_OVERLAP}; END",
    f"CREATE TRIGGER appointments_no_overlap_upd BEFORE UPDATE ON appointments BEGIN {_OVERLAP}; END",
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
]


def upgrade() -> None:
    bind = op.get_bind()
    _tables().create_all(bind)
    for stmt in PG if bind.dialect.name == "postgresql" else SQLITE:
        op.execute(stmt)


def downgrade() -> None:
    raise NotImplementedError("the v1 schema is not downgraded: restore from backup instead")
