"""What lives in Redis is bounded (issue 12 item 9), on the real Redis and PostgreSQL (and the embedded mode):
appointments past their retention leave Redis only once the database holds them and are then read from it; the
streams are trimmed without waiting for a notifier that does not run, and its outbox catches up from the
database when it comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient
from sqlalchemy import select

from api.app import create_app
from engine import keys
from engine.settings import ConfigError, Settings
from persistence.db import make_engine
from persistence.notify.outbox import Outbox
from persistence.notify.scheduling import Scheduling
from persistence.persister import Persister
from persistence.retention import AppointmentTidy
from persistence.tables import notifications
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration
YEAR_S = 365 * 86400


@pytest.fixture
def world(redis_db: str) -> Iterator[dict[str, Any]]:
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    url = fresh_database("booking_retention")
    db = make_engine(url)
    with TestClient(create_app(settings_for(redis_db, database_url=url), background=False)) as c:
        c.headers.update(AUTH)
        yield {"client": c, "redis": r, "db": db, "persister": Persister(r, db, consumer="t-retention")}
    db.dispose()
    r.close()


class Booker:
    """Books appointments one slot apart on a day ahead, through the API."""

    def __init__(self, c: Any) -> None:
        self.c = c
        self.ctx = setup_practice(c, durations=(30,))
        self.pr, self.vt = self.ctx["practitioners"][0], self.ctx["visit_types"][30]
        self.free = search(c, self.ctx["practice_id"], self.vt, next_weekday(1))[::2]

    def hold(self) -> str:
        h = self.c.post(
            "/v1/holds", json={"practitioner_id": self.pr, "visit_type_id": self.vt, "start": self.free.pop()["start"]}
        )
        assert h.status_code == 201, h.text
        return str(h.json()["id"])

    def book(self) -> dict[str, Any]:
        a = self.c.post(
            "/v1/appointments",
            json={"hold_id": self.hold(), "patient": {"name": "Ada L", "email": "ada@example.org", "phone": "+44 1"}},
        )
        assert a.status_code == 201, a.text
        return a.json()  # type: ignore[no-any-return]


def views(c: Any, appt: dict[str, Any], staff_key: str) -> list[tuple[int, Any]]:
    """The appointment as its patient, the practice's staff and the admin read it; and a wrong manage token."""
    url = f"/v1/appointments/{appt['id']}"
    out = []
    for headers in (
        {"Authorization": "", "X-Manage-Token": appt["manage_token"]},
        {"Authorization": f"Bearer {staff_key}"},
        AUTH,
        {"Authorization": "", "X-Manage-Token": "x" * 43},
    ):
        r = c.get(url, headers=headers)
        out.append((r.status_code, r.json()))
    notes = c.get(url + "/notifications")
    out.append((notes.status_code, notes.json()))
    return out


def test_the_tidy_removes_only_what_the_database_holds_and_reads_answer_the_same(world: dict[str, Any]) -> None:
    c, r, db, persister = world["client"], world["redis"], world["db"], world["persister"]
    b = Booker(c)
    pid = b.ctx["practice_id"]
    staff = c.post(f"/v1/practices/{pid}/api-keys").json()["key"]
    kept_booked, cancelled, changed_later = (b.book() for _ in range(3))
    assert c.post(f"/v1/appointments/{cancelled['id']}/cancel", json={"reason": "ill"}).status_code == 200
    persister.drain()
    # after the database stored them: a cancellation it has not seen yet, and a booking it has not seen at all
    assert c.post(f"/v1/appointments/{changed_later['id']}/cancel", json={}).status_code == 200
    unstored = b.book()
    appts = (kept_booked, cancelled, changed_later, unstored)
    before = {a["id"]: views(c, a, staff) for a in appts}

    tidy = AppointmentTidy(r, db, 90)
    assert tidy.run().removed == 0  # none of them has ended yet
    ends = [int(r.hget(keys.appointment(pid, a["id"]), "end")) for a in appts]
    assert tidy.run(now_s=min(ends) + 90 * 86400 - 60).removed == 0  # ended, but less than 90 days ago
    end_s = max(ends)
    report = tidy.run(now_s=end_s + 91 * 86400)
    assert (report.removed, report.unstored) == (2, 2)
    in_redis = {a["id"]: bool(r.exists(keys.appointment(pid, a["id"]))) for a in appts}
    assert in_redis == {
        kept_booked["id"]: False,
        cancelled["id"]: False,
        changed_later["id"]: True,
        unstored["id"]: True,
    }
    assert not [m for m in r.zrange(keys.claims(pid, b.pr), 0, -1) if kept_booked["id"].encode() in m]

    after = {a["id"]: views(c, a, staff) for a in appts}
    assert after == before  # the same bodies for patient, staff and admin, and the same refusal of a wrong token
    assert [status for status, _ in after[kept_booked["id"]]] == [200, 200, 200, 403, 200]

    # a past appointment kept only in the database is read-only: clear 409s, nothing changes
    hold_id = b.hold()
    moved = c.post(f"/v1/appointments/{kept_booked['id']}/reschedule", json={"hold_id": hold_id})
    assert (moved.status_code, moved.json()["code"]) == (409, "appointment_archived"), moved.text
    gone = c.post(f"/v1/appointments/{kept_booked['id']}/cancel", json={})
    assert (gone.status_code, gone.json()["code"]) == (409, "appointment_archived"), gone.text
    again = c.post(f"/v1/appointments/{cancelled['id']}/cancel", json={})
    assert (again.status_code, again.json()) == (200, before[cancelled["id"]][2][1])  # cancelling again: unchanged
    moved = c.post(f"/v1/appointments/{cancelled['id']}/reschedule", json={"hold_id": hold_id})
    assert (moved.status_code, moved.json()["code"]) == (409, "appointment_cancelled")
    assert c.get(f"/v1/holds/{hold_id}").json()["status"] == "held"
    assert views(c, kept_booked, staff) == before[kept_booked["id"]]
    assert c.get(f"/v1/appointments/{pid}.aAAAAAAAAAAAAAAAA").status_code == 404  # unknown anywhere: still 404

    # once the persister stored the rest, they leave too
    persister.drain()
    assert tidy.run(now_s=end_s + 91 * 86400).removed == 2
    assert {a["id"]: views(c, a, staff) for a in appts} == before


def test_retention_is_never_shorter_than_what_reconciliation_restores() -> None:
    assert Settings().appointment_retention_days == 90
    assert Settings.from_env({"APPOINTMENT_RETENTION_DAYS": "30"}).appointment_retention_days == 30
    assert Settings.from_env({"APPOINTMENT_RETENTION_DAYS": "0"}).appointment_retention_days == 0  # kept for ever
    for bad in ("29", "1", "-1"):
        with pytest.raises(ConfigError, match="APPOINTMENT_RETENTION_DAYS"):
            Settings.from_env({"APPOINTMENT_RETENTION_DAYS": bad})


def test_embedded_mode_reads_a_tidied_appointment_from_sqlite(make_client: Any) -> None:
    c = make_client(embedded=True)
    b = Booker(c)
    appt = b.book()
    state = c.app.state
    Persister(state.redis_sync, state.db, consumer="t-embedded").drain()
    before = c.get(f"/v1/appointments/{appt['id']}", headers={"X-Manage-Token": appt["manage_token"]})
    report = AppointmentTidy(state.redis_sync, state.db, 30).run(now_s=time.time() + YEAR_S)
    assert report.removed == 1
    assert not state.redis_sync.exists(keys.appointment(b.ctx["practice_id"], appt["id"]))
    after = c.get(f"/v1/appointments/{appt['id']}", headers={"X-Manage-Token": appt["manage_token"]})
    assert (after.status_code, after.json()) == (before.status_code, before.json()) == (200, before.json())


# ------------------------------------------------------------------------------------ streams and the outbox
def rows_of(db: Any) -> set[tuple[str, str, int]]:
    with db.connect() as conn:
        got = conn.execute(select(notifications.c.appointment_id, notifications.c.kind, notifications.c.version))
        return {(a, k, v) for a, k, v in got if k != "reminder"}


def listing(db: Any) -> list[Any]:
    with db.connect() as conn:
        cols = notifications.c
        return list(conn.execute(select(cols.id, cols.status, cols.enqueued_at_ms).order_by(cols.id)).all())


def test_streams_are_trimmed_while_no_worker_runs_and_the_outbox_catches_up(
    world: dict[str, Any], queue_redis: redis_sync.Redis
) -> None:
    c, r, db = world["client"], world["redis"], world["db"]
    b = Booker(c)
    pid = b.ctx["practice_id"]
    stream = keys.events(pid)
    booked, cancelled = b.book(), b.book()
    assert c.post(f"/v1/appointments/{cancelled['id']}/cancel", json={}).status_code == 200
    world["persister"].drain()  # stored (its own trimming keeps the last hour)
    assert {g["name"]: g["consumers"] for g in r.xinfo_groups(stream)} == {b"notifier": 0, b"persisters": 1}
    unstored = b.book()  # written after the drain: the persister has not stored it
    length = r.xlen(stream)

    # past the 1 h window, and every consumer counts as idle: the persisters' group holds trimming back all the same
    later = Persister(r, db, consumer="t-trim", clock=lambda: time.time() + 7200, group_idle_s=0)
    later.refresh_streams(force=True)
    assert later.trim() > 0
    left = r.xrange(stream)
    assert len(left) < length
    assert any(f[b"type"] == b"book" and f[b"appointment_id"] == unstored["id"].encode() for _, f in left)
    gap = r.hget(keys.stream_gaps(pid), "notifier")
    assert gap is not None and gap.startswith(b"0:")

    # the worker starts: notifications for everything it owes, from the database for what was trimmed
    outbox = Outbox(r, db, Settings(), Scheduling(queue_redis), consumer="t-outbox", block_ms=0)
    outbox.step(block=False)
    # (a booking cancelled before any worker saw it owes its cancellation notice only: read late from the stream,
    # its confirmation would have been cancelled by the cancellation, or skipped by the job's re-check)
    assert rows_of(db) == {
        (booked["id"], "confirmation", 1),
        (cancelled["id"], "cancellation", 2),
        (unstored["id"], "confirmation", 1),  # read from the stream, as ever
    }
    assert r.hget(keys.stream_gaps(pid), "notifier") is None
    owed = listing(db)
    assert all(status == "scheduled" and enqueued for nid, status, enqueued in owed if ":reminder:" not in nid)
    outbox.step(block=False)  # and again: nothing more, nothing twice
    assert listing(db) == owed


def test_a_running_notifier_still_holds_trimming_back(world: dict[str, Any], queue_redis: redis_sync.Redis) -> None:
    c, r, db = world["client"], world["redis"], world["db"]
    b = Booker(c)
    pid = b.ctx["practice_id"]
    stream = keys.events(pid)
    b.book()
    later = Persister(r, db, consumer="t-trim", clock=lambda: time.time() + 7200)
    later.drain()
    outbox = Outbox(r, db, Settings(), Scheduling(queue_redis), consumer="t-outbox", block_ms=0)
    outbox.step(block=False)  # it runs: it has read everything so far
    unread = b.book()
    b.hold()  # (the newest entry is never trimmed: it marks where the persister is)
    later.drain()  # stored, but the notifier has not read it yet
    later.trim()
    assert any(f[b"appointment_id"] == unread["id"].encode() for _, f in r.xrange(stream))
    assert r.hget(keys.stream_gaps(pid), "notifier") is None

    # the same notifier, idle past the bound (0 s here), no longer holds it back; what it missed is caught up
    idle = Persister(r, db, consumer="t-trim", clock=lambda: time.time() + 7200, group_idle_s=0)
    idle.drain()
    idle.trim()
    assert not any(f[b"appointment_id"] == unread["id"].encode() for _, f in r.xrange(stream))
    assert r.hget(keys.stream_gaps(pid), "notifier") is not None
    assert (unread["id"], "confirmation", 1) not in rows_of(db)
    Outbox(r, db, Settings(), Scheduling(queue_redis), consumer="t-outbox-again", block_ms=0).step(
        block=False
    )  # it comes back
    assert (unread["id"], "confirmation", 1) in rows_of(db)


def test_the_year_benchmark_runs_and_the_retention_shrinks_redis(redis_db: str) -> None:
    """benchmarks/studies/retention_year.py on a few simulated weeks (docs/benchmarks.md has the year's figures)."""
    import argparse

    from benchmarks.studies import retention_year
    from tests.support.config import DB_SUFFIX, PG_ADMIN_URL

    args = argparse.Namespace(
        redis_url=redis_db, pg_admin_url=PG_ADMIN_URL, database_name=f"booking_bench_year{DB_SUFFIX}",
        practices=1, practitioners=2, per_day=4, days=45, retention_days=30,
    )  # fmt: skip
    out = retention_year.run(args, log=lambda _line: None)
    assert out["bookings"] > 0 and out["events_stored"] >= 2 * out["bookings"]
    assert 0 < out["appointments_removed_by_tidy"] < out["bookings"]
    assert out["appointments_kept_in_redis"] == out["bookings"] - out["appointments_removed_by_tidy"]
    assert out["stream_bytes_before_after_trim"][1] < out["stream_bytes_before_after_trim"][0]
