"""Apply a batch of stream events to the database in one transaction (idempotent: replays change nothing).

The replay rules (docs/design.md, "Replays and retries change nothing"):

- **A replay is the same event already stored**: its audit id (practice + stream entry id) is in
  ``audit_events`` (audited events) or ``applied_events`` (setup events) *and* its content matches. Only
  then is it acknowledged without being applied. A sequence number alone proves nothing: Redis's audit
  ``seq`` can go back (a failover to a lagging replica, an ``everysec`` crash, a restored backup).
- **Audited events of a practice extend its hash chain in stream order.** An event whose ``seq`` follows the
  chain's last row is appended. Any other event (its ``seq`` went back or jumped) is appended only once the
  audited entry before it in its stream is stored (``predecessor``), after a ``seq_rollback`` or ``seq_gap``
  row that records the break in the chain itself; until then it waits, unacknowledged. ``audit_heads.last_seq``
  keeps the highest ``seq`` ever stored, to which the persister raises Redis's counter after a rollback.
- **Same entry id, other content** (a new Redis reusing an id of a lost one): held back, never acknowledged,
  logged as an error and listed in the ``held`` of the result (the persister publishes it: metrics, /readyz).
- **Setup events are applied once** (``applied_events``), and an API key's revocation is final: the create
  of a revoked key, replayed or late, leaves it revoked; a revocation arriving first stores the revoked row.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from sqlalchemy import and_, bindparam, func, select, update
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


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair: the order the scripts of one stream ran in."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


class Applied(set[str]):
    """The ``audit_id``s now durable (to acknowledge), with what the persister must act on:
    ``raise_seq`` practice -> the highest ``seq`` stored, where Redis's counter went back below it;
    ``held`` audit ids held back for good until an operator looks (an entry id reused with other content)."""

    def __init__(self) -> None:
        super().__init__()
        self.raise_seq: dict[str, int] = {}
        self.held: dict[str, str] = {}


# The stream entry id of the audited event before this one in its practice's stream, or None when there is
# none left (entries are trimmed only once every group acknowledged them: stored).
Predecessor = Callable[[ev.Event], "str | None"]


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
        # a key is created once: a stored row (live, or revoked by a revocation that arrived first) stays
        conn.execute(
            _insert(conn, api_keys).values(**msgspec.structs.asdict(e.data), revoked_ms=None).on_conflict_do_nothing()
        )
    elif isinstance(e, ev.ApiKeyRevoked):
        # a tombstone: stored even before its create arrives, and never lifted (the first revocation stays)
        ins = _insert(conn, api_keys).values(**msgspec.structs.asdict(e.data), revoked_ms=e.at)
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["id"],
                set_={"revoked_ms": func.coalesce(api_keys.c.revoked_ms, ins.excluded.revoked_ms)},
            )
        )


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


class Head:
    """Where a practice's audit chain ends: ``last_seq`` the highest ``seq`` ever stored, ``index`` and
    ``hash`` its last row's chain index and hash, ``tail`` that row's ``seq`` (below ``last_seq`` after Redis's
    counter went back)."""

    __slots__ = ("hash", "index", "last_seq", "tail")

    def __init__(self, last_seq: int, index: int, digest: str, tail: int | None) -> None:
        self.last_seq, self.index, self.hash = last_seq, index, digest
        self.tail = last_seq if tail is None else tail


def _heads(conn: Connection, practice_ids: list[str]) -> dict[str, Head]:
    """The audit chain heads of these practices, locked for this transaction (in id order, as every
    persister locks them, so two persisters never deadlock), created where missing."""
    conn.execute(
        _insert(conn, audit_heads)
        .values([{"practice_id": p, "last_seq": 0, "chain_index": 0, "hash": chain.GENESIS} for p in practice_ids])
        .on_conflict_do_nothing()
    )
    h, a = audit_heads, audit_events
    last_row = and_(a.c.practice_id == h.c.practice_id, a.c.chain_index == h.c.chain_index)
    q = (
        select(h.c.practice_id, h.c.last_seq, h.c.chain_index, h.c.hash, a.c.seq)
        .select_from(h.outerjoin(a, last_row))
        .where(h.c.practice_id.in_(practice_ids))
        .order_by(h.c.practice_id)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(of=h)
    return {
        str(r[0]): Head(int(r[1]), int(r[2]), str(r[3]), None if r[4] is None else int(r[4])) for r in conn.execute(q)
    }


# The columns of an audit row that come from its event: a stored row with the same id is a replay only
# when every one of them matches.
CONTENT = ("seq", "at_ms", "action", "actor", "practitioner_id", "hold_id", "appointment_id", "request_id", "detail")


def _event_columns(e: ev.Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at_ms": e.at,
        "action": e.__struct_config__.tag,
        "actor": e.actor,
        "practitioner_id": e.practitioner_id or None,
        "hold_id": e.hold_id or None,
        "appointment_id": e.appointment_id or None,
        "request_id": e.request_id or None,
        "detail": e.detail_raw,
    }


def _audit_row(e: ev.Event, chain_index: int, prev: str) -> dict[str, Any]:
    row = {
        "id": audit_id(e),
        "practice_id": e.practice_id,
        "chain_index": chain_index,
        "at": utc(e.at / 1000),
        **_event_columns(e),
        "prev_hash": prev,
    }
    row["hash"] = chain.link(prev, row)
    return row


BREAK_ACTOR = "system:persister"


def _break_row(e: ev.Event, kind: str, head: Head, chain_index: int, prev: str) -> dict[str, Any]:
    """The chain row recording that ``e``'s ``seq`` does not follow the chain's last row: ``seq_rollback``
    (Redis's counter went back: its data is older than what is stored) or ``seq_gap`` (it jumped ahead)."""
    detail = {"chain_seq": head.tail, "redis_seq": e.seq, "stored_seq": head.last_seq, "event_id": e.event_id}
    row = {
        "id": f"{e.practice_id}-{kind}-{chain_index}",
        "practice_id": e.practice_id,
        "chain_index": chain_index,
        "seq": head.tail,
        "at_ms": e.at,
        "at": utc(e.at / 1000),
        "action": kind,
        "actor": BREAK_ACTOR,
        "practitioner_id": None,
        "hold_id": None,
        "appointment_id": None,
        "request_id": None,
        "detail": msgspec.json.encode(detail).decode(),
        "prev_hash": prev,
    }
    row["hash"] = chain.link(prev, row)
    return row


def _stored_rows(conn: Connection, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    q = select(audit_events.c.id, *(audit_events.c[n] for n in CONTENT)).where(audit_events.c.id.in_(ids))
    return {str(r["id"]): r for r in conn.execute(q).mappings()}


def _same(row: Any, e: ev.Event) -> bool:
    mine = _event_columns(e)
    return all(row[n] == mine[n] for n in CONTENT)


def _follows_stored(
    conn: Connection, e: ev.Event, head: Head, predecessor: Predecessor | None, chained: set[str]
) -> bool:
    """Whether ``e``, whose ``seq`` does not follow the chain's last row, may be appended now: the audited
    entry before it in its stream is stored (or gone), so nothing that ran before it is still on its way.
    Without a ``predecessor`` (the writer used on its own) a rollback is taken as in order, a gap waits."""
    if predecessor is None:
        return e.seq <= head.tail
    before = predecessor(e)
    if before is None:
        return True
    ident = f"{e.practice_id}-{before}"
    if ident in chained:
        return True
    return conn.execute(select(audit_events.c.id).where(audit_events.c.id == ident)).first() is not None


def _apply_setup(conn: Connection, events: list[ev.Event], done: Applied) -> None:
    """Setup events not applied yet, in stream order; a replay (same id and instant in ``applied_events``)
    changes nothing."""
    ids = [audit_id(e) for e in events]
    seen = {
        str(r[0]): int(r[1])
        for r in conn.execute(select(applied_events.c.id, applied_events.c.at_ms).where(applied_events.c.id.in_(ids)))
    }
    fresh = []
    for e in events:
        if seen.get(audit_id(e)) != e.at:
            _setup(conn, e)
            fresh.append({"id": audit_id(e), "at_ms": e.at})
        done.add(audit_id(e))
    if fresh:
        conn.execute(_insert(conn, applied_events).values(fresh).on_conflict_do_nothing())


# Only a booking can be refused by the database (the exclusion constraint on appointments); other events'
# effects run without a savepoint of their own (two round trips fewer each).
GUARDED = (ev.AppointmentBooked, ev.AppointmentRescheduled)


def apply(
    conn: Connection, batch: Iterable[ev.Event], careful: bool = False, predecessor: Predecessor | None = None
) -> Applied:
    """Apply what can be applied; returns the ``audit_id``s (practice + stream entry id: entry ids repeat
    across practices' streams) of the events that are now durable, to acknowledge (see ``Applied``).
    ``careful`` puts every event's effects in a savepoint: the retry after an unexpected IntegrityError,
    which then holds back only the practice of the refused event. ``predecessor`` names the audited entry
    before an event in its stream (the persister asks Redis); it orders events whose ``seq`` does not
    follow the chain (the rules are in this module's docstring)."""
    done = Applied()
    by_practice: dict[str, list[ev.Event]] = defaultdict(list)
    setup: list[ev.Event] = []
    for e in batch:
        # by type, not by seq 0: a counter that went back may number an audited event 0
        (setup if e.__struct_config__.tag in ev.SETUP else by_practice[e.practice_id]).append(e)
    if setup:
        _apply_setup(conn, setup, done)
    heads = _heads(conn, sorted(by_practice)) if by_practice else {}
    later = Deferred()
    rows: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for practice_id in sorted(by_practice):
        head = heads[practice_id]
        first = len(rows)
        mine = sorted(by_practice[practice_id], key=lambda x: entry_order(x.event_id))
        stored = _stored_rows(conn, [audit_id(e) for e in mine if e.seq <= head.last_seq])
        chained: set[str] = set()
        for e in mine:
            ident = audit_id(e)
            if ident in chained:
                done.add(ident)
                continue
            have = stored.get(ident)
            if have is not None:
                if _same(have, e):
                    done.add(ident)  # a replay: already durable
                    continue
                done.held[ident] = "its stream entry id is stored with other content"
                log.error(
                    "practice %s: event %s (%s, seq %d) has the stream entry id of a stored event with other "
                    "content: held back, not acknowledged (a Redis reusing the ids of lost entries?)",
                    practice_id,
                    e.event_id,
                    e.__struct_config__.tag,
                    e.seq,
                )
                break
            brk = None
            if e.seq != head.tail + 1:
                if not _follows_stored(conn, e, head, predecessor, chained):
                    log.info("practice %s: audit seq %d waits for its predecessor in the stream", practice_id, e.seq)
                    break
                brk = "seq_rollback" if e.seq <= head.tail else "seq_gap"
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
            if brk is not None:
                log.warning(
                    "practice %s: audit seq %d does not follow the stored chain (last seq %d, highest stored %d): "
                    "stored after a %s row",
                    practice_id,
                    e.seq,
                    head.tail,
                    head.last_seq,
                    brk,
                )
                head.index += 1
                rows.append(_break_row(e, brk, head, head.index, head.hash))
                head.hash = rows[-1]["hash"]
            head.index += 1
            row = _audit_row(e, head.index, head.hash)
            rows.append(row)
            head.hash, head.tail, head.last_seq = row["hash"], e.seq, max(head.last_seq, e.seq)
            chained.add(ident)
            done.add(ident)
        if len(rows) > first:
            moved.append({"pid": practice_id, "new_seq": head.last_seq, "new_index": head.index, "new_hash": head.hash})
        if head.tail < head.last_seq:
            done.raise_seq[practice_id] = head.last_seq  # Redis numbers below what is stored: raise it
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
