"""Apply a batch of stream events to the database in one transaction (idempotent: replays change nothing).

Audited events of a practice are applied strictly in their Redis ``seq`` order, each extending the
practice's hash chain; an event whose predecessor has not arrived yet is left for a later batch. Setup
events (seq 0) are upserts keyed by id.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from engine import events as ev
from persistence import chain
from persistence.tables import (
    api_keys,
    applied_events,
    appointments,
    audit_events,
    audit_heads,
    holds,
    practices,
    practitioners,
    schedules,
    visit_types,
)

log = logging.getLogger("booking.persister")
UTC = dt.timezone.utc


def utc(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, UTC)


def _insert(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def audit_id(e: ev.Event) -> str:
    return f"{e.practice_id}-{e.event_id}"


# Tables whose rows only move forward: a replayed or older copy must not overwrite a newer one.
_NEWER_ONLY = {
    "schedules": lambda t, new: t.c.changed_at_ms <= new.changed_at_ms,
    "appointments": lambda t, new: t.c.version < new.version,
}
_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(conn: Connection, table: Any, rows: dict[str, Any] | list[dict[str, Any]], key: str) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE every other column (rows carry every column), for one row or
    many (executemany); the statement is built once per dialect and table."""
    stmt = _UPSERTS.get((conn.dialect.name, table.name))
    if stmt is None:
        ins = _insert(conn, table)
        guard = _NEWER_ONLY.get(table.name)
        stmt = ins.on_conflict_do_update(
            index_elements=[key],
            set_={c.name: ins.excluded[c.name] for c in table.c if c.name != key},
            where=guard(table, ins.excluded) if guard else None,
        )
        _UPSERTS[(conn.dialect.name, table.name)] = stmt
    conn.execute(stmt, rows)


def _setup(conn: Connection, e: ev.Event) -> None:
    at = utc(e.at / 1000)
    if isinstance(e, ev.PracticeSaved):
        _upsert(conn, practices, {**msgspec.structs.asdict(e.data), "created_at": at}, "id")
    elif isinstance(e, ev.PractitionerSaved):
        _upsert(conn, practitioners, {**msgspec.structs.asdict(e.data), "created_at": at}, "id")
    elif isinstance(e, ev.VisitTypeSaved):
        _upsert(conn, visit_types, {**msgspec.structs.asdict(e.data), "created_at": at}, "id")
    elif isinstance(e, ev.ApiKeySaved):
        _upsert(conn, api_keys, {**msgspec.structs.asdict(e.data), "revoked_ms": None}, "id")
    elif isinstance(e, ev.ApiKeyRevoked):
        conn.execute(update(api_keys).where(api_keys.c.id == e.data.id).values(revoked_ms=e.at))


def appointment_row(a: ev.AppointmentRecord, at_ms: int) -> dict[str, Any]:
    return {
        "id": a.id,
        "practice_id": a.practice_id,
        "practitioner_id": a.practitioner_id,
        "visit_type_id": a.visit_type_id,
        "start_at": utc(a.start),
        "end_at": utc(a.end),
        "status": a.status,
        "version": a.version,
        "patient_name": a.patient.name,
        "patient_email": a.patient.email,
        "patient_phone": a.patient.phone,
        "manage_hash": a.manage_hash,
        "hold_id": a.hold_id,
        "cancel_reason": None,
        "updated_at_ms": at_ms,
    }


class Deferred:
    """Hold records, written at the end of a batch with one executemany each: new holds, then their state
    changes (a hold is always placed before it is booked, released or expired, so the two phases keep each
    hold's order). Nothing depends on hold rows within a batch. Appointment changes are never deferred: a
    cancellation frees the interval that a later booking of the same batch may take, and the database's
    exclusion constraint must see them in order."""

    def __init__(self) -> None:
        self.holds: list[dict[str, Any]] = []
        self.hold_states: list[dict[str, Any]] = []

    def flush(self, conn: Connection) -> None:
        if self.holds:
            _upsert(conn, holds, self.holds, "id")
        if self.hold_states:
            conn.execute(
                update(holds)
                .where(holds.c.id == bindparam("b_id"))
                .values(
                    state=bindparam("b_state"),
                    appointment_id=func.coalesce(bindparam("b_appt"), holds.c.appointment_id),
                    updated_at_ms=bindparam("b_at"),
                ),
                self.hold_states,
            )


def _effects(conn: Connection, e: ev.Event, later: Deferred | None = None) -> None:
    """The durable records an audited event changes (besides its audit row); with ``later``, hold records
    are collected for one statement per kind at the end of the batch."""
    now = Deferred() if later is None else later
    if isinstance(e, ev.ScheduleChanged):
        _upsert(
            conn,
            schedules,
            {
                "practitioner_id": e.practitioner_id,
                "practice_id": e.practice_id,
                "body": msgspec.json.encode(e.data).decode(),
                "changed_at_ms": e.at,
                "event_id": e.event_id,
            },
            "practitioner_id",
        )
    elif isinstance(e, ev.HoldPlaced):
        now.holds.append(
            {
                "id": e.hold_id,
                "practice_id": e.practice_id,
                "practitioner_id": e.practitioner_id,
                "visit_type_id": e.detail.visit_type_id,
                "start_at": utc(e.detail.start),
                "end_at": utc(e.detail.end),
                "expires_at_ms": e.detail.expires_ms,
                "state": "held",
                "appointment_id": None,
                "updated_at_ms": e.at,
            }
        )
    elif isinstance(e, ev.HoldReleased | ev.HoldExpired):
        state = "released" if isinstance(e, ev.HoldReleased) else "expired"
        now.hold_states.append({"b_id": e.hold_id, "b_state": state, "b_appt": None, "b_at": e.at})
    elif isinstance(e, ev.AppointmentBooked | ev.AppointmentRescheduled):
        _upsert(conn, appointments, appointment_row(e.data, e.at), "id")
        now.hold_states.append({"b_id": e.hold_id, "b_state": "booked", "b_appt": e.appointment_id, "b_at": e.at})
    elif isinstance(e, ev.AppointmentCancelled):
        c = e.data
        conn.execute(
            update(appointments)
            .where(appointments.c.id == e.appointment_id, appointments.c.version < c.version)
            .values(status="cancelled", version=c.version, cancel_reason=c.cancel_reason, updated_at_ms=e.at)
        )
    if later is None:
        now.flush(conn)


def _heads(conn: Connection, practice_ids: list[str]) -> dict[str, tuple[int, int, str]]:
    """The audit chain heads of these practices, locked for this transaction (in id order, as every
    persister locks them, so two persisters never deadlock), created where missing."""
    conn.execute(
        _insert(conn, audit_heads)
        .values([{"practice_id": p, "last_seq": 0, "chain_index": 0, "hash": chain.GENESIS} for p in practice_ids])
        .on_conflict_do_nothing()
    )
    q = (
        select(audit_heads.c.practice_id, audit_heads.c.last_seq, audit_heads.c.chain_index, audit_heads.c.hash)
        .where(audit_heads.c.practice_id.in_(practice_ids))
        .order_by(audit_heads.c.practice_id)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return {str(r[0]): (int(r[1]), int(r[2]), str(r[3])) for r in conn.execute(q)}


def _audit_row(e: ev.Event, chain_index: int, prev: str) -> dict[str, Any]:
    row = {
        "id": audit_id(e),
        "practice_id": e.practice_id,
        "chain_index": chain_index,
        "seq": e.seq,
        "at_ms": e.at,
        "at": utc(e.at / 1000),
        "action": e.__struct_config__.tag,
        "actor": e.actor,
        "practitioner_id": e.practitioner_id or None,
        "hold_id": e.hold_id or None,
        "appointment_id": e.appointment_id or None,
        "request_id": e.request_id or None,
        "detail": e.detail_raw,
        "prev_hash": prev,
    }
    row["hash"] = chain.link(prev, row)
    return row


# Only a booking can be refused by the database (the exclusion constraint on appointments); other events'
# effects run without a savepoint of their own (two round trips fewer each).
GUARDED = (ev.AppointmentBooked, ev.AppointmentRescheduled)


def apply(conn: Connection, batch: Iterable[ev.Event], careful: bool = False) -> set[str]:
    """Apply what can be applied; returns the ``audit_id``s (practice + stream entry id: entry ids repeat
    across practices' streams) of the events that are now durable, to acknowledge.
    ``careful`` puts every event's effects in a savepoint: the retry after an unexpected IntegrityError,
    which then holds back only the practice of the refused event."""
    done: set[str] = set()
    by_practice: dict[str, list[ev.Event]] = defaultdict(list)
    setup_rows = []
    for e in batch:
        if e.seq == 0:
            _setup(conn, e)
            setup_rows.append({"id": audit_id(e), "at_ms": e.at})
            done.add(audit_id(e))
        else:
            by_practice[e.practice_id].append(e)
    if setup_rows:
        conn.execute(_insert(conn, applied_events).values(setup_rows).on_conflict_do_nothing())
    heads = _heads(conn, sorted(by_practice)) if by_practice else {}
    later = Deferred()
    rows: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for practice_id in sorted(by_practice):
        last_seq, index, prev = heads[practice_id]
        first = len(rows)
        for e in sorted(by_practice[practice_id], key=lambda x: x.seq):
            if e.seq <= last_seq:
                done.add(audit_id(e))  # a replay: already durable
                continue
            if e.seq != last_seq + 1:
                log.info("practice %s: audit seq %d waits for %d", practice_id, e.seq, last_seq + 1)
                break
            if isinstance(e, ev.SearchPerformed):
                pass  # searches change nothing but the audit trail
            elif not careful and not isinstance(e, GUARDED):
                _effects(conn, e, later)
            else:
                try:
                    with conn.begin_nested():
                        _effects(conn, e, None if careful else later)
                except IntegrityError as exc:
                    log.error(
                        "practice %s: event %s (%s) refused by the database, left pending: %s",
                        practice_id,
                        e.event_id,
                        e.__struct_config__.tag,
                        exc.orig,
                    )
                    break
            index += 1
            row = _audit_row(e, index, prev)
            rows.append(row)
            prev, last_seq = row["hash"], e.seq
            done.add(audit_id(e))
        if len(rows) > first:
            moved.append({"pid": practice_id, "new_seq": last_seq, "new_index": index, "new_hash": prev})
    later.flush(conn)
    if rows:
        conn.execute(audit_events.insert(), rows)  # one multi-row INSERT for the whole batch
        conn.execute(
            update(audit_heads)
            .where(audit_heads.c.practice_id == bindparam("pid"))
            .values(last_seq=bindparam("new_seq"), chain_index=bindparam("new_index"), hash=bindparam("new_hash")),
            moved,
        )
    return done
