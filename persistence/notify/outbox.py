"""The notification outbox: booking, rescheduling and cancelling events and waitlist offers (read from the
streams through the `notifier` consumer group) become notification rows, then jobs. Crash-safe: rows are written
and committed before the event is acknowledged; a crash in between replays the event and the unique rows absorb
it. Entries trimmed while no worker ran are caught up on from the database (persistence/notify/catchup.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from engine import events as ev
from engine import keys
from engine.offer_notices import KIND as OFFER
from engine.scripts.registry import SyncLua
from engine.settings import Settings
from persistence.audit_rows import insert_for
from persistence.notify import catchup
from persistence.notify.change import Change
from persistence.notify.scheduling import Scheduling
from persistence.streams import StreamConsumer
from persistence.tables import LIVE_NOTIFICATION_STATUSES, notifications
from persistence.webhooks import events as webhook_events
from persistence.webhooks import store as webhook_store

log = logging.getLogger("booking.notify")


def notification_id(appointment_id: str, kind: str, offset_s: int, version: int) -> str:
    return f"{appointment_id}:{kind}:{offset_s}:{version}"


def _row(
    subject_id: str,
    practice_id: str,
    at: int,
    kind: str,
    offset_s: int,
    version: int,
    due_ms: int,
    status: str,
    rescheduled: bool = False,
) -> dict[str, Any]:
    """A notification row about an appointment, or (kind ``waitlist_offer``) a waitlist entry: the
    ``appointment_id`` column names the subject, whose version the job re-checks."""
    return {
        "id": notification_id(subject_id, kind, offset_s, version),
        "appointment_id": subject_id,
        "practice_id": practice_id,
        "kind": kind,
        "offset_s": offset_s,
        "version": version,
        "status": status,
        "due_at_ms": due_ms,
        "sent_at_ms": None,
        "attempts": 0,
        "last_error": None,
        "lease_until_ms": None,
        "enqueued_at_ms": None,
        "rescheduled": 1 if rescheduled else 0,
        "created_at_ms": at,
    }


def _cancel_stale(conn: Connection, subject_id: str, version: int) -> list[str]:
    """Cancel the subject's rows of older versions that may still be sent; returns their ids."""
    t = notifications
    stale = [
        r[0]
        for r in conn.execute(
            select(t.c.id).where(
                t.c.appointment_id == subject_id, t.c.version < version, t.c.status.in_(LIVE_NOTIFICATION_STATUSES)
            )
        )
    ]
    if stale:
        conn.execute(
            update(t).where(t.c.id.in_(stale), t.c.status.in_(LIVE_NOTIFICATION_STATUSES)).values(status="cancelled")
        )
    return stale


def _to_enqueue(conn: Connection, rows: list[dict[str, Any]], subject_id: str, version: int) -> list[tuple[str, int]]:
    """Insert the rows (a replay finds them there), then list the subject's rows of this version not enqueued."""
    t = notifications
    if rows:
        conn.execute(insert_for(conn, t).values(rows).on_conflict_do_nothing())
    live = conn.execute(
        select(t.c.id, t.c.due_at_ms).where(
            t.c.appointment_id == subject_id,
            t.c.version == version,
            t.c.status.in_(LIVE_NOTIFICATION_STATUSES),
            t.c.enqueued_at_ms.is_(None),
        )
    ).all()
    return [(r[0], int(r[1])) for r in live]


def plan(conn: Connection, e: Change, offsets: tuple[int, ...]) -> tuple[list[tuple[str, int]], list[str]]:
    """Write the rows a change calls for; returns (rows to schedule: (id, due_ms), row ids to cancel)."""
    version = e.version
    stale = _cancel_stale(conn, e.appointment_id, version)
    about = (e.appointment_id, e.practice_id, e.at)
    rows = []
    if e.kind == "cancel":
        rows.append(_row(*about, "cancellation", 0, version, e.at, "scheduled"))
    else:
        start_ms = e.start_s * 1000
        moved = e.kind == "reschedule"
        rows.append(_row(*about, "confirmation", 0, version, e.at, "scheduled", rescheduled=moved))
        for off in offsets:
            due = start_ms - off * 1000
            # an offset already past when the booking was made is skipped, never sent late
            rows.append(_row(*about, "reminder", off, version, due, "scheduled" if due > e.at else "skipped"))
    return _to_enqueue(conn, rows, e.appointment_id, version), stale


def plan_offer(conn: Connection, e: ev.WaitlistEvent) -> tuple[list[tuple[str, int]], list[str]]:
    """A waitlist event: an offer mail (one row per entry version: each offer mailed at most once) on
    ``waitlist_offer``; any later change of the entry cancels an offer mail not sent yet (the job would skip it
    anyway: it re-checks the entry and its hold)."""
    entry = e.data
    stale = _cancel_stale(conn, entry.id, entry.version)
    rows = []
    if isinstance(e, ev.WaitlistOffered):
        rows.append(_row(entry.id, e.practice_id, e.at, OFFER, 0, entry.version, e.at, "scheduled"))
    return (_to_enqueue(conn, rows, entry.id, entry.version) if rows else []), stale


class Outbox(StreamConsumer):
    group = keys.NOTIFY_GROUP

    def __init__(self, redis: Any, db: Engine, settings: Settings, scheduling: Scheduling, **kw: Any) -> None:
        super().__init__(redis, **kw)
        self.db, self.settings, self.scheduling = db, settings, scheduling
        self._last_claim = 0.0
        self._last_catch_up = 0.0
        self.lua = SyncLua(redis, ("close_gap",))

    def handle(self, entries: list[tuple[str, str, dict[Any, Any]]]) -> int:
        if not entries:
            return 0
        decoded = self.decode(entries)
        # webhooks' events (persistence/webhooks): prepared from Redis before the transaction, stored in it
        hooked = webhook_events.prepare(self.redis, [e for _, e in decoded if webhook_events.wanted(e)])
        self.apply(
            [
                Change.of(e) if isinstance(e, ev.AppointmentEvent) else e
                for _, e in decoded
                if isinstance(e, ev.AppointmentEvent | ev.WaitlistEvent)
            ],
            hooked,
        )
        return self.ack([(key, e.event_id) for key, e in decoded])

    def apply(
        self, changes: Sequence[Change | ev.WaitlistEvent], hooked: list[webhook_events.Prepared] | None = None
    ) -> None:
        """Write the rows of the changes (an appointment's, or a waitlist entry's: its offer mail) and the
        webhooks' events and deliveries in one transaction, then schedule and cancel their jobs."""
        if not changes and not hooked:
            return
        to_schedule: list[tuple[str, int]] = []
        to_cancel: list[str] = []
        with self.db.begin() as conn:
            for change in changes:
                if isinstance(change, Change):
                    sched, cancel = plan(conn, change, self.settings.reminder_offsets)
                else:
                    sched, cancel = plan_offer(conn, change)
                to_schedule += sched
                to_cancel += cancel
            webhook_store.record(conn, hooked or [])
        for nid in to_cancel:
            self.scheduling.cancel(nid)
        for nid, due in to_schedule:
            self.scheduling.enqueue(nid, due)
        if to_schedule:
            with self.db.begin() as conn:
                conn.execute(
                    update(notifications)
                    .where(notifications.c.id.in_([n for n, _ in to_schedule]))
                    .values(enqueued_at_ms=int(time.time() * 1000))
                )

    def step(self, block: bool = True) -> int:
        self.refresh_streams()
        if self.cluster:  # one round trip per node, no blocking read (the worker's loop paces the ticks)
            pending, new = self.fetch(None)
            n = self.handle(pending) + self.handle(new)
        else:
            n = self.handle(self.read("0", None))
            n += self.handle(self.read(">", self.block_ms if block and self.block_ms else None))
        if self.clock() - self._last_claim > 5:
            self._last_claim = self.clock()
            self.claim_abandoned()
        if self.clock() - self._last_catch_up > catchup.INTERVAL_S:
            self._last_catch_up = self.clock()
            n += catchup.catch_up(self)
        return n
