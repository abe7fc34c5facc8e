"""Notifications follow the appointment: confirmation, reminders, cancellation, over real SMTP (aiosmtpd),
with the worker (outbox, rq-scheduler, rq jobs) running against the real Redis and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from email.utils import parseaddr
from typing import Any

import icalendar
import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from engine.redis import clients
from engine.settings import parse_offsets
from persistence.db import make_engine
from persistence.notify.worker import NotificationWorker
from persistence.persister import Persister
from tests.support import processes
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import search, setup_practice
from tests.support.smtp import SmtpServer, ics_of, text_of

pytestmark = pytest.mark.integration
ALL_DAY = [{"day": d, "start": "00:00", "end": "24:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]


class World:
    def __init__(self, client: TestClient[Any], smtp: SmtpServer, worker: NotificationWorker, db: Any) -> None:
        self.client, self.smtp, self.worker, self.db = client, smtp, worker, db

    @property
    def inbox(self) -> Any:
        return self.smtp.inbox


def make_world(offsets: str, database: str = "booking_notify", **settings: Any) -> Iterator[World]:
    """Settings name the Redis (``redis_url``: a module's ``redis_db``, or a cluster with the queue apart in
    tests/system/test_cluster_notify.py). A module that is not this one passes its own ``database``: this one runs
    beside the rest (tests/conftest.py)."""
    url = fresh_database(database)
    db = make_engine(url)
    with SmtpServer() as smtp:
        s = settings_for(database_url=url, smtp_url=smtp.url, reminder_offsets=parse_offsets(offsets), **settings)
        r = clients.sync_redis(s)
        r.flushdb()  # on a cluster: every primary
        worker = NotificationWorker(s, r, db, queue=clients.queue_redis(s))
        persister = Persister(r, db, consumer="notify-tests")
        import threading

        stop = threading.Event()
        pt = threading.Thread(target=persister.run, args=(stop,), daemon=True)
        with TestClient(create_app(s)) as c:
            c.headers.update(AUTH)
            pt.start()
            worker.start()
            try:
                yield World(c, smtp, worker, db)
            finally:
                worker.close()
                stop.set()
                pt.join(10)
    db.dispose()
    r.close()


@pytest.fixture
def world(redis_db: str) -> Iterator[World]:
    yield from make_world("24h,2h", redis_url=redis_db)


def book(c: Any, pr: str, vt: str, start: str, name: str = "Ada Lovelace") -> dict[str, Any]:
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})
    assert h.status_code == 201, h.text
    r = c.post(
        "/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": name, "email": "ada@example.org"}}
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def first_weekday_of(month: int, year: int) -> dt.date:
    d = dt.date(year, month, 10)
    while d.weekday() != 1:  # a Tuesday
        d += dt.timedelta(days=1)
    return d


@pytest.mark.parametrize(("month", "offset"), [(7, "+02:00"), (1, "+01:00")])
def test_confirmation_states_the_local_time_in_text_and_icalendar(world: World, month: int, offset: str) -> None:
    c = world.client
    today = dt.date.today()
    year = today.year + (1 if (month, 10) <= (today.month, today.day) else 0)
    day = first_weekday_of(month, year)
    ctx = setup_practice(c, tz="Europe/Paris", durations=(30,), horizon_days=(day - today).days + 2)
    slot = next(s for s in search(c, ctx["practice_id"], ctx["visit_types"][30], day) if s["start"][11:16] == "09:00")
    assert slot["start"].endswith(offset)
    appt = book(c, ctx["practitioners"][0], ctx["visit_types"][30], slot["start"])
    nid = f"{appt['id']}:confirmation:0:1"
    assert world.inbox.wait_for(lambda i: nid in i.by_notification(), 30)
    msg = world.inbox.by_notification()[nid][0]
    body = text_of(msg)
    assert f"{day.day} " in body and "at 09:00 (Europe/Paris, UTC" + offset + ")" in body
    assert "Europe/Paris" in body and "cancel" in body.lower() and "Dr 0" in body and "Test practice" in body
    cal = icalendar.Calendar.from_ical(ics_of(msg))
    assert str(cal["METHOD"]) == "REQUEST"
    ev = cal.walk("VEVENT")[0]
    start = ev.decoded("DTSTART")
    assert (start.hour, start.minute) == (9, 0) and start.tzinfo is not None
    assert start.utcoffset() == dt.timedelta(hours=2 if month == 7 else 1)
    assert str(ev["UID"]) == f"{appt['id']}@booking-engine" and int(ev["SEQUENCE"]) == 1
    assert any(tz.get("TZID") == "Europe/Paris" for tz in cal.walk("VTIMEZONE"))
    # RFC 5546: a REQUEST names its organizer (the practice, at the sender's address) and attendee (the patient)
    assert str(ev["ORGANIZER"]) == "mailto:" + parseaddr(settings_for(None).notify_from)[1]
    assert ev["ORGANIZER"].params["CN"] == "Test practice"
    assert str(ev["ATTENDEE"]) == "mailto:ada@example.org" and ev["ATTENDEE"].params["CN"] == "Ada Lovelace"
    items = c.get(f"/v1/appointments/{appt['id']}/notifications").json()["items"]
    kinds = {(i["kind"], i["status"]) for i in items}
    assert ("confirmation", "sent") in kinds
    assert [i["status"] for i in items if i["kind"] == "reminder"] == ["scheduled", "scheduled"]


def soon_slot(c: Any, ctx: dict[str, Any], pr: str, lead_s: int) -> str:
    """The first slot of ``pr`` starting at least ``lead_s`` seconds from now."""
    now = dt.datetime.now(dt.timezone.utc)
    for s in search(c, ctx["practice_id"], ctx["visit_types"][5], now.date(), days=2, practitioner_id=pr):
        if dt.datetime.fromisoformat(s["start"]) >= now + dt.timedelta(seconds=lead_s):
            return s["start"]
    raise AssertionError("no slot soon enough")


@pytest.fixture
def short_world(redis_db: str) -> Iterator[World]:
    yield from make_world("40s,20s", redis_url=redis_db)


@pytest.mark.timeout(300)  # slow: polls for SMTP deliveries with deadlines of up to 90 s
def test_300_bookings_150_cancelled_reminders_only_for_the_live_ones(short_world: World) -> None:
    c, inbox = short_world.client, short_world.inbox
    practices = [
        setup_practice(
            c, tz="UTC", durations=(5,), practitioners=30, weekly=ALL_DAY, slot_step_minutes=1, horizon_days=2
        )
        for _ in range(10)
    ]
    lead = 75
    appts = []
    for ctx in practices:
        for pr in ctx["practitioners"]:
            appts.append(book(c, pr, ctx["visit_types"][5], soon_slot(c, ctx, pr, lead)))
    cancelled = appts[::2]
    live = appts[1::2]
    for a in cancelled:
        r = c.post(f"/v1/appointments/{a['id']}/cancel")
        assert r.status_code == 200
    last_start = max(dt.datetime.fromisoformat(a["start"]) for a in appts)
    wait = (last_start - dt.datetime.now(dt.timezone.utc)).total_seconds() - 20 + 15
    expected = {f"{a['id']}:reminder:{o}:1" for a in live for o in (40, 20)}
    # about 150 reminders fall due in the same minute or two (one worker sends them): give it a minute more
    assert inbox.wait_for(lambda i: expected <= set(i.by_notification()), max(wait, 30) + 60)
    time.sleep(1.0)  # let anything wrongly scheduled arrive too
    got = inbox.by_notification()
    for nid in expected:
        assert len(got[nid]) == 1, nid
    for a in cancelled:
        assert not any(k.startswith(f"{a['id']}:reminder") for k in got), a["id"]
        notice = got.get(f"{a['id']}:cancellation:0:2", [])
        assert len(notice) == 1
        cal = icalendar.Calendar.from_ical(ics_of(notice[0]))
        assert str(cal["METHOD"]) == "CANCEL" and int(cal.walk("VEVENT")[0]["SEQUENCE"]) == 2
        assert str(cal.walk("VEVENT")[0]["ATTENDEE"]) == "mailto:ada@example.org"  # RFC 5546: a CANCEL names them too
        statuses = {
            (i["kind"], i["status"]) for i in c.get(f"/v1/appointments/{a['id']}/notifications").json()["items"]
        }
        assert ("reminder", "sent") not in statuses
    assert sum(1 for k in got if ":reminder:" in k) == len(expected)


@pytest.mark.timeout(300)  # slow: polls for SMTP deliveries with deadlines of up to 90 s
def test_reschedule_before_the_reminder_sends_it_once_for_the_new_time(short_world: World) -> None:
    c, inbox = short_world.client, short_world.inbox
    ctx = setup_practice(
        c, tz="UTC", durations=(5,), practitioners=2, weekly=ALL_DAY, slot_step_minutes=1, horizon_days=2
    )
    dr_a, dr_b = ctx["practitioners"]
    appt = book(c, dr_a, ctx["visit_types"][5], soon_slot(c, ctx, dr_a, 50))
    new_start = soon_slot(c, ctx, dr_b, 55)
    h = c.post(
        "/v1/holds", json={"practitioner_id": dr_b, "visit_type_id": ctx["visit_types"][5], "start": new_start}
    ).json()
    moved = c.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": h["id"]})
    assert moved.status_code == 200 and moved.json()["version"] == 2
    wanted = {f"{appt['id']}:reminder:40:2", f"{appt['id']}:reminder:20:2"}
    wait = (dt.datetime.fromisoformat(new_start) - dt.datetime.now(dt.timezone.utc)).total_seconds() - 20 + 15
    assert inbox.wait_for(lambda i: wanted <= set(i.by_notification()), wait)
    time.sleep(1.0)
    got = inbox.by_notification()
    reminders = {k: v for k, v in got.items() if ":reminder:" in k}
    assert set(reminders) == wanted and all(len(v) == 1 for v in reminders.values())
    when = dt.datetime.fromisoformat(new_start).strftime("%H:%M")
    for msgs in reminders.values():
        assert f"at {when} (UTC" in text_of(msgs[0])
        ev = icalendar.Calendar.from_ical(ics_of(msgs[0])).walk("VEVENT")[0]
        assert int(ev["SEQUENCE"]) == 2 and ev.decoded("DTSTART") == dt.datetime.fromisoformat(new_start)
    moved_notice = got[f"{appt['id']}:confirmation:0:2"][0]
    assert "moved" in text_of(moved_notice).lower()


@pytest.fixture
def retry_world(redis_db: str) -> Iterator[World]:
    yield from make_world("24h", redis_url=redis_db, notify_retry_base_seconds=0.5, notify_max_attempts=4)


def test_smtp_refusing_for_a_while_is_retried_and_a_permanent_refusal_ends_failed(retry_world: World) -> None:
    c, inbox = retry_world.client, retry_world.inbox
    ctx = setup_practice(c, tz="Europe/Paris", durations=(30,), weekly=ALL_DAY)
    slots = search(c, ctx["practice_id"], ctx["visit_types"][30], dt.date.today() + dt.timedelta(days=3))
    inbox.refuse = True
    first = book(c, ctx["practitioners"][0], ctx["visit_types"][30], slots[0]["start"])
    nid = f"{first['id']}:confirmation:0:1"
    assert inbox.wait_for(lambda i: i.refused >= 2, 30)
    inbox.refuse = False
    assert inbox.wait_for(lambda i: nid in i.by_notification(), 30)
    assert len(inbox.by_notification()[nid]) == 1

    def confirmation() -> dict[str, Any]:
        items = c.get(f"/v1/appointments/{first['id']}/notifications").json()["items"]
        return next(i for i in items if i["kind"] == "confirmation")

    # the worker records the send after the SMTP server has the message: wait for that record, not the mail
    deadline = time.time() + 30
    while time.time() < deadline and confirmation()["status"] == "sending":
        time.sleep(0.1)
    item = confirmation()
    assert item["status"] == "sent" and item["attempts"] >= 3
    inbox.refuse = True
    second = book(c, ctx["practitioners"][0], ctx["visit_types"][30], slots[4]["start"])

    def failed() -> bool:
        items = c.get(f"/v1/appointments/{second['id']}/notifications").json()["items"]
        return any(i["kind"] == "confirmation" and i["status"] == "failed" for i in items)

    deadline = time.time() + 30
    while time.time() < deadline and not failed():
        time.sleep(0.2)
    assert failed()
    item = next(
        i
        for i in c.get(f"/v1/appointments/{second['id']}/notifications").json()["items"]
        if i["kind"] == "confirmation"
    )
    assert item["attempts"] == 4 and "451" in (item["last_error"] or "")
    assert 'booking_notifications{kind="confirmation",status="failed"} 1.0' in c.get("/metrics").text


@pytest.mark.timeout(300)  # slow: polls for SMTP deliveries with deadlines of up to 90 s
@pytest.mark.parametrize("where", ["before_data", "after_data"])
def test_worker_killed_while_sending_loses_nothing_and_sends_nothing_twice(redis_db: str, where: str) -> None:
    """The worker is killed mid-conversation at a known point (the SMTP server holds the client there):
    before the DATA, the message is resent by the next worker; after the server took the DATA but before it
    answered, it is not resent (it may have been delivered: at most once) and its row says why. Every other
    message goes out exactly once either way."""
    import os
    import signal
    import subprocess
    import sys

    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    url = fresh_database("booking_notify_kill")
    with SmtpServer() as smtp:
        inbox = smtp.inbox
        inbox.stall_s = 0.05  # every message takes a while
        gate, waiting = (
            (inbox.gate_rcpt, inbox.waiting_at_rcpt)
            if where == "before_data"
            else (inbox.gate_data, inbox.waiting_at_data)
        )
        env = {
            **os.environ,
            "REDIS_URL": redis_db,
            "DATABASE_URL": url,
            "SMTP_URL": smtp.url,
            "NOTIFY_LEASE_SECONDS": "2",
            "REMINDER_OFFSETS": "24h",
        }

        def start() -> subprocess.Popen[bytes]:
            return processes.spawn([sys.executable, "-m", "api.cli", "worker"], env)

        s = settings_for(redis_db, database_url=url)
        worker = start()
        try:
            with TestClient(create_app(s)) as c:
                c.headers.update(AUTH)
                ctx = setup_practice(c, tz="Europe/Paris", durations=(30,), weekly=ALL_DAY)
                # 3 days on: every slot is 47 h away or more, so no 24 h reminder falls due during the test (with 2,
                # a run near midnight UTC booked Paris 00:00 slots less than 24 h ahead and their reminders went out)
                day = dt.date.today() + dt.timedelta(days=3)
                appts = [
                    book(c, ctx["practitioners"][0], ctx["visit_types"][30], slot["start"])
                    for slot in search(c, ctx["practice_id"], ctx["visit_types"][30], day)[:60:2]
                ]
                expected = {f"{a['id']}:confirmation:0:1" for a in appts}
                assert inbox.wait_for(lambda i: len(i.by_notification()) >= 5, 60)
                gate.set()  # the next conversation stops at the gate
                assert waiting.wait(60), "no message reached the gate"
                held = {str(m["X-Booking-Notification"]) for m in inbox.messages}
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait(10)
                gate.clear()
                got_at_kill = len(inbox.by_notification())
                assert got_at_kill < len(expected), "the kill came too late to interrupt anything"
                worker = start()
                assert inbox.wait_for(lambda i: expected <= set(i.by_notification()), 90)
                time.sleep(2.5)  # a lease running out would resend now
                got = inbox.by_notification()
                assert set(got) == expected
                assert all(len(v) == 1 for v in got.values()), {k: len(v) for k, v in got.items() if len(v) > 1}
                rows = {
                    a["id"]: i
                    for a in appts
                    for i in c.get(f"/v1/appointments/{a['id']}/notifications").json()["items"]
                    if i["kind"] == "confirmation"
                }
                if where == "before_data":
                    assert {i["status"] for i in rows.values()} == {"sent"}
                else:
                    # the message the server took when the worker died: delivered once, never resent
                    failed = {aid for aid, i in rows.items() if i["status"] == "failed"}
                    assert len(failed) == 1, rows
                    (aid,) = failed
                    assert f"{aid}:confirmation:0:1" in held
                    assert "not resent" in rows[aid]["last_error"]
                    assert {i["status"] for a, i in rows.items() if a != aid} == {"sent"}
        finally:
            worker.kill()
            processes.stop(worker)  # reaps it, and kills anything left in its process group
    r.close()
