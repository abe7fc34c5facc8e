"""The notifier's last steps before a message goes out (persistence/notify/jobs.py ``deliver``), with the in-process
worker, the real SMTP server of tests/support/smtp.py held at RCPT (the handshake under way, nothing handed over):
a cancel during the handshake stops the confirmation (the appointment is read again just before the message goes
out); an attempt whose claim was taken over meanwhile hands nothing over; and a row whose attempts are used up by
attempts that never got an answer ends ``failed`` instead of going round for ever."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from persistence.tables import notifications
from tests.support.http import search, setup_practice
from tests.system.test_notifications import ALL_DAY, World, book, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Iterator[World]:
    yield from make_world("24h", database="booking_notify_handover", redis_url=redis_db, notify_max_attempts=3)


def row(w: World, nid: str) -> Any:
    with w.db.connect() as conn:
        return conn.execute(select(notifications).where(notifications.c.id == nid)).one()


def wait_row(w: World, nid: str, pred: Any, timeout: float = 30) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = row(w, nid)
        if pred(got):
            return got
        time.sleep(0.1)
    raise AssertionError(f"{nid}: {row(w, nid)}")


def first_slots(w: World) -> tuple[dict[str, Any], list[dict[str, str]]]:
    ctx = setup_practice(w.client, tz="Europe/Paris", durations=(30,), weekly=ALL_DAY)
    return ctx, search(w.client, ctx["practice_id"], ctx["visit_types"][30], dt.date.today() + dt.timedelta(days=3))


def test_a_cancel_during_the_handshake_stops_the_confirmation(world: World) -> None:
    c, inbox = world.client, world.inbox
    ctx, slots = first_slots(world)
    inbox.gate_rcpt.set()
    a = book(c, ctx["practitioners"][0], ctx["visit_types"][30], slots[0]["start"])
    assert inbox.waiting_at_rcpt.wait(30), "the confirmation never reached RCPT"
    assert c.post(f"/v1/appointments/{a['id']}/cancel", json={}).status_code == 200
    inbox.gate_rcpt.clear()
    confirmation = f"{a['id']}:confirmation:0:1"
    got = wait_row(world, confirmation, lambda r: r.status not in ("scheduled", "sending"))
    assert got.status == "skipped" and "version 2" in got.last_error, got
    assert inbox.wait_for(lambda i: f"{a['id']}:cancellation:0:2" in i.by_notification(), 30)
    assert confirmation not in inbox.by_notification()


def test_an_attempt_whose_claim_was_taken_over_hands_nothing_over_and_used_up_attempts_end_failed(
    world: World,
) -> None:
    c, inbox = world.client, world.inbox
    ctx, slots = first_slots(world)
    inbox.gate_rcpt.set()
    a = book(c, ctx["practitioners"][0], ctx["visit_types"][30], slots[0]["start"])
    assert inbox.waiting_at_rcpt.wait(30), "the confirmation never reached RCPT"
    nid = f"{a['id']}:confirmation:0:1"
    assert row(world, nid).status == "sending" and row(world, nid).attempts == 1
    # as if this attempt's lease had run out and two later attempts had died unanswered: the row is another's now
    with world.db.begin() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.id == nid)
            .values(status="retrying", attempts=3, last_error="worker died while sending; resent", enqueued_at_ms=None)
        )
    inbox.gate_rcpt.clear()
    got = wait_row(world, nid, lambda r: r.status == "failed", timeout=60)  # the repair loop enqueues it again
    assert got.attempts == 3 and "gave up after 3 attempts" in got.last_error, got
    time.sleep(1)
    assert nid not in inbox.by_notification()  # the stalled attempt lost its claim: it handed nothing over
