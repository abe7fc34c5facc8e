"""What an event does to the durable tables: upserts that never go back (a replayed or older copy never
overwrites a newer row), setup records, appointment rows, and the hold rows deferred to the end of a batch."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import bindparam, func, update
from sqlalchemy.engine import Connection

from engine import events as ev
from persistence import waitlist_rows
from persistence.audit_rows import insert_for, utc
from persistence.tables import (
    api_keys,
    holds,
    practices,
    practitioners,
    resources,
    series,
    series_occurrences,
    visit_types,
    waitlist_entries,
)

# Tables whose rows only move forward: a replayed or older copy must not overwrite a newer one.
_NEWER_ONLY = {
    "schedules": lambda t, new: t.c.changed_at_ms <= new.changed_at_ms,
    "appointments": lambda t, new: t.c.version < new.version,
    "waitlist_entries": lambda t, new: t.c.version < new.version,
}
_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(conn: Connection, table: Any, rows: dict[str, Any] | list[dict[str, Any]], key: str) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE every other column (rows carry every column), for one row or
    many (executemany); the statement is built once per dialect and table."""
    stmt = _UPSERTS.get((conn.dialect.name, table.name))
    if stmt is None:
        ins = insert_for(conn, table)
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
        row = {**msgspec.structs.asdict(e.data), "created_at": at}
        row["resource_ids"] = msgspec.json.encode(e.data.resource_ids).decode()
        _upsert(conn, visit_types, row, "id")
    elif isinstance(e, ev.ResourceSaved):
        r = e.data
        _upsert(
            conn,
            resources,
            {"id": r.id, "practice_id": r.practice_id, "name": r.name, "kind": r.kind,
             "closures": msgspec.json.encode(r.closures).decode(), "created_at": at},
            "id",
        )  # fmt: skip
    elif isinstance(e, ev.ApiKeySaved):
        # a key is created once: a stored row (live, or revoked by a revocation that arrived first) stays
        conn.execute(
            insert_for(conn, api_keys)
            .values(**msgspec.structs.asdict(e.data), revoked_ms=None)
            .on_conflict_do_nothing()
        )
    elif isinstance(e, ev.ApiKeyRevoked):
        # a tombstone: stored even before its create arrives, and never lifted (the first revocation stays)
        ins = insert_for(conn, api_keys).values(**msgspec.structs.asdict(e.data), revoked_ms=e.at)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["id"],
                set_={"revoked_ms": func.coalesce(api_keys.c.revoked_ms, ins.excluded.revoked_ms)},
            )
        )


def waitlist_entry(conn: Connection, e: ev.WaitlistEvent) -> None:
    """Every waitlist event carries the entry after its change: upsert it, newer-only by ``version`` (a replay
    or an older copy delivered late changes nothing)."""
    _upsert(conn, waitlist_entries, waitlist_rows.row(e.data), "id")


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
        "patient_language": a.patient.language or None,
        "manage_hash": a.manage_hash,
        "hold_id": a.hold_id,
        "cancel_reason": None,
        "updated_at_ms": at_ms,
    }


def series_rows(conn: Connection, e: ev.AppointmentBooked) -> None:
    """A series' occurrence booked (series_book.lua): its series (once) and its place in it. Both are written once
    and never changed: a series' occurrences then live on as appointments."""
    d = e.detail
    if d.series_id is None:
        return
    conn.execute(
        insert_for(conn, series)
        .values(
            id=d.series_id, practice_id=e.practice_id, practitioner_id=e.practitioner_id, visit_type_id=d.visit_type_id,
            every_days=d.every_days or 0, count=d.count or 0, manage_hash=e.data.manage_hash, booked_at_ms=e.at,
        )
        .on_conflict_do_nothing()
    )  # fmt: skip
    conn.execute(
        insert_for(conn, series_occurrences)
        .values(appointment_id=e.appointment_id, series_id=d.series_id, position=d.series_index or 0,
                hold_id=e.hold_id)
        .on_conflict_do_nothing()
    )  # fmt: skip


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
