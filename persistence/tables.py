"""Tables of the durable store (SQLAlchemy Core). Migrations live in persistence/migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from persistence import chain

metadata = MetaData()

practices = Table(
    "practices",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("language", String(8), nullable=False, server_default="en"),
)

practitioners = Table(
    "practitioners",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

visit_types = Table(
    "visit_types",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("duration_minutes", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("buffer_before_minutes", Integer, nullable=False, server_default="0"),
    Column("buffer_after_minutes", Integer, nullable=False, server_default="0"),
    Column("max_per_day", Integer, nullable=True),
    Column("resource_ids", Text, nullable=False, server_default="[]"),  # JSON list of resource ids (0011)
)

resources = Table(
    "resources",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("closures", Text, nullable=False, server_default="[]"),  # the Closures as JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("practitioner_id", String(64), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("body", Text, nullable=False),  # the Schedule as JSON, exactly as the API accepted it
    Column("changed_at_ms", BigInteger, nullable=False),
    Column("event_id", String(40), nullable=False),
)

appointments = Table(
    "appointments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("practitioner_id", String(64), nullable=False),
    Column("visit_type_id", String(64), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("patient_name", Text, nullable=False),
    Column("patient_email", Text, nullable=False),
    Column("patient_phone", Text),
    Column("patient_language", String(8)),
    Column("manage_hash", String(64), nullable=False),
    Column("hold_id", String(128)),
    Column("cancel_reason", Text),
    Column("updated_at_ms", BigInteger, nullable=False),
    # the rooms and equipment it claims (JSON list, from its book/reschedule event; NULL: written before 0011)
    Column("resource_ids", Text, nullable=True),
    Index("ix_appointments_practitioner_start", "practitioner_id", "start_at"),
)

# Series (engine/series.py): one row per booked series, one per occurrence (its appointment and place); written
# from the 'book' events of series_book.lua (insert once: a series never changes after booking, its
# occurrences live on as appointments). Reconciliation rebuilds the Redis series hash from them.
series = Table(
    "series",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("practitioner_id", String(64), nullable=False),
    Column("visit_type_id", String(64), nullable=False),
    Column("every_days", SmallInteger, nullable=False),
    Column("count", SmallInteger, nullable=False),
    Column("manage_hash", String(64), nullable=False),
    Column("booked_at_ms", BigInteger, nullable=False),
)

series_occurrences = Table(
    "series_occurrences",
    metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("series_id", String(128), nullable=False, index=True),
    Column("position", SmallInteger, nullable=False),
    Column("hold_id", String(128), nullable=False),
)

holds = Table(
    "holds",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("practitioner_id", String(64), nullable=False),
    Column("visit_type_id", String(64), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("appointment_id", String(64)),
    Column("updated_at_ms", BigInteger, nullable=False),
)

# Waitlist entries (docs/waitlist.md): the latest copy of each entry record (engine.model.WaitlistRecord),
# upserted newer-only by ``version`` from every waitlist event. ``status`` is stored as the record has it
# (waiting, offered, booked, left); ``ended`` is read, never stored (its window passed). The offer columns
# name the live offer of an ``offered`` entry (null otherwise).
waitlist_entries = Table(
    "waitlist_entries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("practice_id", String(32), nullable=False),
    Column("visit_type_id", String(64), nullable=False),
    Column("practitioner_id", String(64)),
    Column("from_date", Date, nullable=False),
    Column("to_date", Date, nullable=False),
    Column("weekdays", Text),  # JSON list of day names, or null: every day
    Column("from_time", String(5)),
    Column("to_time", String(5)),
    Column("spans", Text, nullable=False),  # JSON [[start_s, end_s], ...] (UTC)
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("join_order", BigInteger, nullable=False),  # the record's ``order`` (T:wl:queue's score)
    Column("offer_hold_id", String(128)),
    Column("offer_practitioner_id", String(64)),
    Column("offer_start_at", DateTime(timezone=True)),
    Column("offer_end_at", DateTime(timezone=True)),
    Column("offer_expires_ms", BigInteger),
    Column("had", Text, nullable=False),  # JSON list of '<practitioner>|<start>|<end>' already offered
    Column("appointment_id", String(64)),
    Column("manage_hash", String(64), nullable=False),
    Column("lapsed_ms", BigInteger),  # when its last offer lapsed (cleared by the next offer)
    Column("patient", Text, nullable=False),  # the Patient as JSON
    Column("joined_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_waitlist_practice_order", "practice_id", "join_order"),
    Index("ix_waitlist_status", "status"),
)

# Append-only (the database refuses UPDATE and DELETE), hash-chained per practice.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(64), primary_key=True),  # '<practice_id>-<stream entry id>'
    Column("practice_id", String(32), nullable=False),
    Column("chain_index", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),  # the Redis audit sequence number
    Column("at_ms", BigInteger, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor", Text, nullable=False),
    Column("practitioner_id", String(64)),
    Column("hold_id", String(128)),
    Column("appointment_id", String(64)),
    Column("request_id", String(64)),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # the canonical form of ``hash`` (persistence/chain.py); rows stored before migration 0004 have 1
    Column("hash_version", SmallInteger, nullable=False, default=chain.VERSION, server_default="1"),
    UniqueConstraint("practice_id", "chain_index", name="uq_audit_chain"),
    Index("ix_audit_practice_at", "practice_id", "at_ms"),
    Index("ix_audit_appointment", "appointment_id"),
    Index("ix_audit_hold", "hold_id"),
)

# One row per practice: where its audit chain ends.
audit_heads = Table(
    "audit_heads",
    metadata,
    Column("practice_id", String(32), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("chain_index", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Setup events and other non-audited entries already applied (idempotency of replays).
applied_events = Table(
    "applied_events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("at_ms", BigInteger, nullable=False),
)

# One row per (appointment, kind, offset, version): the unique key that makes every message go out at most once.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(200), primary_key=True),  # '<appointment>:<kind>:<offset_s>:<version>'
    Column("appointment_id", String(64), nullable=False, index=True),
    Column("practice_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("offset_s", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # scheduled retrying sending handed sent skipped cancelled failed
    Column("due_at_ms", BigInteger, nullable=False),
    Column("sent_at_ms", BigInteger),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("lease_until_ms", BigInteger),
    Column("enqueued_at_ms", BigInteger),
    Column("rescheduled", Integer, nullable=False),  # 1: the confirmation of a moved appointment
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_notifications_status_due", "status", "due_at_ms"),
)
# The statuses of a notification that may still be sent (the others are final, or 'sending': claimed).
LIVE_NOTIFICATION_STATUSES = ("scheduled", "retrying")

# Practice staff keys: only the SHA-256 of each key is ever stored.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

# App keys (API.md "App keys"): written by the API before Redis (api/routes/app_keys.py), put back into Redis by
# reconciliation; a revoked key keeps its row with revoked_ms (never restored). Migration 0010.
app_keys = Table(
    "app_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("practice_ids", Text),  # JSON list of practice ids, or null: every practice
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
)

# Per-deployment secrets, made by the migrations: 'audit_cursor' signs the cursors of GET /v1/audit.
deployment_secrets = Table(
    "deployment_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)

# Webhooks (docs/webhooks.md). An endpoint's secret is stored as given out: every delivery is signed with it.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("practice_id", String(32), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event types
    Column("include_patient", SmallInteger, nullable=False),
    Column("secret", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # active disabled deleted
    Column("last_error", Text),
    Column("disabled_at_ms", BigInteger),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("lease_owner", String(128)),  # the worker delivering to it now (one at a time: in order)
    Column("lease_until_ms", BigInteger),
)

# The durable record of every event a webhook may carry, written by the outbox before its stream entry is
# acknowledged (replays read it). ``subject_id`` (the appointment, or the waitlist entry) orders deliveries,
# by the stream entry id (``ord_ms``, ``ord_n``). ``patient`` is kept apart: sent only with include_patient.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(64), primary_key=True),  # the webhook-id: stable over retries and replays
    Column("practice_id", String(32), nullable=False),
    Column("type", String(40), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("ord_ms", BigInteger, nullable=False),
    Column("ord_n", BigInteger, nullable=False),
    Column("data", Text, nullable=False),  # the body without the patient: {"type","timestamp","data"}
    Column("patient", Text),  # JSON {"name","email"} or null
    Index("ix_webhook_events_practice_at", "practice_id", "at_ms"),
)

# One row per (endpoint, event): pending until a 2xx answer.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("endpoint_id", String(32), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("subject_id", String(64), nullable=False),
    Column("ord_ms", BigInteger, nullable=False),
    Column("ord_n", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending delivered
    Column("attempts", Integer, nullable=False),
    Column("next_at_ms", BigInteger, nullable=False),
    Column("window_start_ms", BigInteger, nullable=False),  # retried until WEBHOOK_RETRY_WINDOW_SECONDS after
    Column("last_error", Text),
    Column("delivered_at_ms", BigInteger),
    Index("ix_webhook_deliveries_due", "status", "next_at_ms"),
    Index("ix_webhook_deliveries_subject", "endpoint_id", "subject_id", "status"),
)

# Every attempt, as listed by GET .../webhooks/{id}/deliveries.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("endpoint_id", String(32), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("type", String(40), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_webhook_attempts_endpoint", "endpoint_id", "id"),
)

# Events the persister set aside (docs/operations.md, "Quarantine"): the database refused them (DataError,
# IntegrityError) or they could not be decoded. ``raw`` is the stream entry's fields as JSON (control characters
# escaped, so it always stores); ``audited`` 1 when the event's audit row is in the chain and only its effects wait;
# ``entity`` names what it changes ('appointment:<id>', 'waitlist:<id>'...): later events of the same entity are
# set aside behind it, so a replay applies them in stream order. Open while ``replayed_at_ms`` is null.
quarantined_events = Table(
    "quarantined_events",
    metadata,
    Column("id", String(64), primary_key=True),  # '<practice_id>-<stream entry id>' (the audit id)
    Column("practice_id", String(32), nullable=False),
    Column("entry_id", String(40), nullable=False),
    Column("action", String(32), nullable=False),  # the event type, or 'undecodable'
    Column("entity", Text),  # space-separated
    Column("audited", SmallInteger, nullable=False),
    Column("raw", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("replayed_at_ms", BigInteger),
    Index("ix_quarantine_open", "practice_id", "replayed_at_ms"),
)
