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
- **An event the database refuses is set aside, never retried for ever** (persistence/quarantine.py): a
  ``DataError`` or ``IntegrityError`` from one event's effects stores it raw in ``quarantined_events`` and
  acknowledges it; an audited event keeps its row in the chain (only its effects wait), and later events of the same
  appointment, waitlist entry, hold or schedule wait behind it (set aside too), to be replayed in order.
- **Setup events are applied once** (``applied_events``), and an API key's revocation is final: the create
  of a revoked key, replayed or late, leaves it revoked; a revocation arriving first stores the revoked row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from engine import events as ev
from persistence import quarantine
from persistence.audit_rows import (
    Predecessor,
    audit_id,
    audit_row,
    break_row,
    follows_stored,
    insert_for,
    lock_heads,
    same_event,
    stored_rows,
    utc,
)
from persistence.effects import Deferred, _setup, _upsert, appointment_row, series_rows, waitlist_entry
from persistence.tables import (
    applied_events,
    appointments,
    audit_events,
    audit_heads,
    schedules,
)

log = logging.getLogger("booking.persister")


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair: the order the scripts of one stream ran in."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


class Applied(set[str]):
    """The ``audit_id``s now durable (to acknowledge), with what the persister must act on:
    ``raise_seq`` practice -> the highest ``seq`` stored, where Redis's counter went back below it;
    ``held`` audit ids held back for good until an operator looks (an entry id reused with other content);
    ``quarantined`` audit id -> why, of the events set aside (they are in the set too: acknowledged)."""

    def __init__(self) -> None:
        super().__init__()
        self.raise_seq: dict[str, int] = {}
        self.held: dict[str, str] = {}
        self.quarantined: dict[str, str] = {}

    def merge(self, other: Applied) -> None:
        self.update(other)
        self.raise_seq.update(other.raise_seq)
        self.held.update(other.held)
        self.quarantined.update(other.quarantined)


# The stream entry id of the audited event before this one in its practice's stream, or None when there is
# none left (entries are trimmed only once every group acknowledged them: stored).


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
    elif isinstance(e, ev.Held):
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
        row = appointment_row(e.data, e.at)
        row["resource_ids"] = msgspec.json.encode(e.detail.resource_ids or []).decode()  # restored exactly
        _upsert(conn, appointments, row, "id")
        if isinstance(e, ev.AppointmentBooked):
            series_rows(conn, e)
        now.hold_states.append({"b_id": e.hold_id, "b_state": "booked", "b_appt": e.appointment_id, "b_at": e.at})
    elif isinstance(e, ev.AppointmentCancelled):
        c = e.data
        conn.execute(
            update(appointments)
            .where(appointments.c.id == e.appointment_id, appointments.c.version < c.version)
            .values(status="cancelled", version=c.version, cancel_reason=c.cancel_reason, updated_at_ms=e.at)
        )
    elif isinstance(e, ev.WaitlistEvent):
        waitlist_entry(conn, e)
    if later is None:
        now.flush(conn)


def effects_of(conn: Connection, e: ev.Event) -> None:
    """Everything ``e`` changes besides its audit row (a quarantined event's replay)."""
    if e.__struct_config__.tag in ev.SETUP:
        _setup(conn, e)
        conn.execute(
            insert_for(conn, applied_events).values([{"id": audit_id(e), "at_ms": e.at}]).on_conflict_do_nothing()
        )
    else:
        _effects(conn, e)


def _apply_setup(
    conn: Connection, events: list[ev.Event], done: Applied, careful: bool, aside: list[dict[str, Any]], raw: Any
) -> None:
    """Setup events not applied yet, in stream order; a replay (same id and instant in ``applied_events``)
    changes nothing. ``careful``: each in a savepoint, one the database refuses set aside."""
    ids = [audit_id(e) for e in events]
    seen = {
        str(r[0]): int(r[1])
        for r in conn.execute(select(applied_events.c.id, applied_events.c.at_ms).where(applied_events.c.id.in_(ids)))
    }
    fresh = []
    for e in events:
        if seen.get(audit_id(e)) != e.at:
            if not careful:
                _setup(conn, e)
            else:
                try:
                    with conn.begin_nested():
                        _setup(conn, e)
                except quarantine.POISON as exc:
                    _set_aside(e, exc, done, aside, raw, audited=False)
                    continue
            fresh.append({"id": audit_id(e), "at_ms": e.at})
        done.add(audit_id(e))
    if fresh:
        conn.execute(insert_for(conn, applied_events).values(fresh).on_conflict_do_nothing())


# Only a booking can be refused by the database (the exclusion constraint on appointments); other events'
# effects run without a savepoint of their own (two round trips fewer each).
GUARDED = (ev.AppointmentBooked, ev.AppointmentRescheduled)


def _set_aside(
    e: ev.Event, exc: BaseException | str, done: Applied, aside: list[dict[str, Any]], raw: Any, *, audited: bool
) -> None:
    ident = audit_id(e)
    why = exc if isinstance(exc, str) else quarantine.reason(exc)
    log.error(
        "practice %s: event %s (%s) set aside in the quarantine (%s): %s",
        e.practice_id,
        e.event_id,
        e.__struct_config__.tag,
        "its audit row stored, its effects wait" if audited else "whole",
        why,
    )
    aside.append(quarantine.event_row(e, raw.get(ident) if raw else None, why, audited=audited))
    done.quarantined[ident] = why
    done.add(ident)


def apply(
    conn: Connection,
    batch: Iterable[ev.Event],
    careful: bool = False,
    predecessor: Predecessor | None = None,
    raw: Mapping[str, str] | None = None,
) -> Applied:
    """Apply what can be applied; returns the ``audit_id``s (practice + stream entry id: entry ids repeat
    across practices' streams) of the events that are now durable, to acknowledge (see ``Applied``).
    ``careful`` puts every event's effects in a savepoint: the retry after the database refused the batch,
    which then sets aside only the refused event (persistence/quarantine.py; ``raw`` gives the stream fields of
    each audit id to store). ``predecessor`` names the audited entry
    before an event in its stream (the persister asks Redis); it orders events whose ``seq`` does not
    follow the chain (the rules are in this module's docstring)."""
    done = Applied()
    by_practice: dict[str, list[ev.Event]] = defaultdict(list)
    setup: list[ev.Event] = []
    for e in batch:
        # by type, not by seq 0: a counter that went back may number an audited event 0
        (setup if e.__struct_config__.tag in ev.SETUP else by_practice[e.practice_id]).append(e)
    aside: list[dict[str, Any]] = []
    if setup:
        _apply_setup(conn, setup, done, careful, aside, raw)
    heads = lock_heads(conn, sorted(by_practice)) if by_practice else {}
    blocked = quarantine.open_entities(conn, by_practice)  # later events of these wait behind the quarantined
    later = Deferred()
    rows: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for practice_id in sorted(by_practice):
        head = heads[practice_id]
        first = len(rows)
        mine = sorted(by_practice[practice_id], key=lambda x: entry_order(x.event_id))
        stored = stored_rows(conn, [audit_id(e) for e in mine if e.seq <= head.last_seq])
        chained: set[str] = set()
        for e in mine:
            ident = audit_id(e)
            if ident in chained:
                done.add(ident)
                continue
            have = stored.get(ident)
            if have is not None:
                if same_event(have, e):
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
                if not follows_stored(conn, e, head, predecessor, chained) and not _after_quarantined(
                    conn, e, predecessor
                ):
                    log.info("practice %s: audit seq %d waits for its predecessor in the stream", practice_id, e.seq)
                    break
                brk = "seq_rollback" if e.seq <= head.tail else "seq_gap"
            entities = {(practice_id, one) for one in quarantine.entities_of(e)}
            if entities & blocked:
                behind = " ".join(sorted(one for _, one in entities & blocked))
                _set_aside(e, f"waits behind a quarantined event of {behind}", done, aside, raw, audited=True)
                blocked |= entities
            elif isinstance(e, ev.SearchPerformed):
                pass  # searches change nothing but the audit trail
            elif not careful and not isinstance(e, GUARDED):
                _effects(conn, e, later)
            else:
                try:
                    with conn.begin_nested():
                        _effects(conn, e, None if careful else later)
                except quarantine.POISON as exc:
                    # set aside: its audit row still extends the chain below, its effects wait in the quarantine
                    _set_aside(e, exc, done, aside, raw, audited=True)
                    blocked |= entities
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
                rows.append(break_row(e, brk, head, head.index, head.hash))
                head.hash = rows[-1]["hash"]
            head.index += 1
            row = audit_row(e, head.index, head.hash)
            rows.append(row)
            head.hash, head.tail, head.last_seq = row["hash"], e.seq, max(head.last_seq, e.seq)
            chained.add(ident)
            done.add(ident)
        if len(rows) > first:
            moved.append({"pid": practice_id, "new_seq": head.last_seq, "new_index": head.index, "new_hash": head.hash})
        if head.tail < head.last_seq:
            done.raise_seq[practice_id] = head.last_seq  # Redis numbers below what is stored: raise it
    later.flush(conn)
    quarantine.set_aside(conn, aside)
    if rows:
        conn.execute(audit_events.insert(), rows)  # one multi-row INSERT for the whole batch
        conn.execute(
            update(audit_heads)
            .where(audit_heads.c.practice_id == bindparam("pid"))
            .values(last_seq=bindparam("new_seq"), chain_index=bindparam("new_index"), hash=bindparam("new_hash")),
            moved,
        )
    return done


def _after_quarantined(conn: Connection, e: ev.Event, predecessor: Predecessor | None) -> bool:
    """Whether the audited entry before ``e`` in its stream was set aside whole (the persister could not store even
    its audit row): ``e`` then follows it after a ``seq_gap`` row instead of waiting for it for ever."""
    before = predecessor(e) if predecessor is not None else None
    return before is not None and quarantine.is_open(conn, f"{e.practice_id}-{before}")
