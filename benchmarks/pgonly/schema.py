"""Tables of the PostgreSQL-only comparator.

Every claim (hold or booking) of a practitioner is a row of `claims`; an exclusion constraint on
(practitioner, time range) over the active rows makes two live claims overlapping impossible. A hold is a
row with an expiry: expired holds that stand in the way are deactivated in the same transaction that
inserts a new claim. Slot starts are materialised per (practitioner, visit type) for the horizon, like the
engine's `base` sorted sets.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text

DDL = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE practices (id text PRIMARY KEY, name text NOT NULL, timezone text NOT NULL);
CREATE TABLE practitioners (id text PRIMARY KEY, practice_id text NOT NULL REFERENCES practices, name text NOT NULL);
CREATE INDEX ON practitioners (practice_id);
CREATE TABLE visit_types (id text PRIMARY KEY, practice_id text NOT NULL REFERENCES practices, name text NOT NULL,
  duration_minutes int NOT NULL);
CREATE TABLE schedules (practitioner_id text PRIMARY KEY REFERENCES practitioners, body jsonb NOT NULL,
  min_notice_s int NOT NULL, horizon_s int NOT NULL);
CREATE TABLE slots (visit_type_id text NOT NULL, start_at timestamptz NOT NULL, practitioner_id text NOT NULL,
  PRIMARY KEY (visit_type_id, start_at, practitioner_id));
CREATE TABLE claims (id text PRIMARY KEY, practice_id text NOT NULL, practitioner_id text NOT NULL,
  visit_type_id text NOT NULL, during tstzrange NOT NULL, state text NOT NULL, expires_at timestamptz NOT NULL,
  appointment_id text, active boolean NOT NULL,
  CONSTRAINT no_overlapping_claims EXCLUDE USING gist (practitioner_id WITH =, during WITH &&) WHERE (active));
CREATE TABLE appointments (id text PRIMARY KEY, practice_id text NOT NULL, practitioner_id text NOT NULL,
  visit_type_id text NOT NULL, start_at timestamptz NOT NULL, end_at timestamptz NOT NULL, status text NOT NULL,
  version int NOT NULL, patient jsonb NOT NULL, manage_hash text NOT NULL, hold_id text NOT NULL,
  cancel_reason text, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE audit_events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), action text NOT NULL,
  actor text NOT NULL, practice_id text NOT NULL, practitioner_id text, hold_id text, appointment_id text,
  detail jsonb NOT NULL);
"""


def create(admin_url: str, name: str) -> str:
    """Drop and create the comparator's database; returns its SQLAlchemy URL."""
    admin = create_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    eng = create_engine(url)
    with eng.begin() as c:
        for stmt in DDL.split(";"):
            if stmt.strip():
                c.execute(text(stmt))
    eng.dispose()
    return url
