"""Holds, bookings, cancellations and idempotency on the real Redis."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from engine import events
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration


def hold(c: Any, pr: str, vt: str, start: str, **headers: str) -> Any:
    return c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start}, headers=headers)


def book(c: Any, hold_id: str, **headers: str) -> Any:
    return c.post(
        "/v1/appointments",
        json={"hold_id": hold_id, "patient": {"name": "Ada L", "email": "ada@example.org"}},
        headers=headers,
    )


def starts(slots: list[dict[str, str]]) -> list[str]:
    return [s["start"] for s in slots]


def test_booking_30_minutes_removes_overlapping_slots_of_every_length_and_cancel_restores_them(client: Any) -> None:
    ctx = setup_practice(client, durations=(15, 30))
    pid, pr = ctx["practice_id"], ctx["practitioners"][0]
    v15, v30 = ctx["visit_types"][15], ctx["visit_types"][30]
    day = next_weekday(1)
    before30, before15 = search(client, pid, v30, day), search(client, pid, v15, day)
    nine = next(s["start"] for s in before30 if s["start"][11:16] == "09:00")
    h = hold(client, pr, v30, nine).json()
    appt = book(client, h["id"]).json()
    assert appt["status"] == "booked" and appt["version"] == 1 and appt["start"] == nine
    gone30 = sorted(set(starts(before30)) - set(starts(search(client, pid, v30, day))))
    gone15 = sorted(set(starts(before15)) - set(starts(search(client, pid, v15, day))))
    assert [s[11:16] for s in gone30] == ["08:45", "09:00", "09:15"]
    assert [s[11:16] for s in gone15] == ["09:00", "09:15"]
    r = client.post(f"/v1/appointments/{appt['id']}/cancel", json={"reason": "feeling better"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["version"] == 2
    assert search(client, pid, v30, day) == before30
    assert search(client, pid, v15, day) == before15
    again = client.post(f"/v1/appointments/{appt['id']}/cancel")
    assert again.status_code == 200 and again.json() == r.json()


def test_release_offers_the_interval_again_at_once(client: Any) -> None:
    ctx = setup_practice(client)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(2)
    before = search(client, pid, vt, day)
    h = hold(client, pr, vt, before[0]["start"])
    assert h.status_code == 201
    assert before[0]["start"] not in starts(search(client, pid, vt, day))
    assert client.get(f"/v1/holds/{h.json()['id']}").json()["id"] == h.json()["id"]
    assert client.delete(f"/v1/holds/{h.json()['id']}").status_code == 204
    assert search(client, pid, vt, day) == before
    gone = client.get(f"/v1/holds/{h.json()['id']}")
    assert gone.status_code == 410 and gone.json()["code"] == "hold_expired"
    assert client.delete(f"/v1/holds/{h.json()['id']}").status_code == 204  # releasing again changes nothing
    r = book(client, h.json()["id"])
    assert r.status_code == 410 and r.json()["code"] == "hold_expired"


def test_expired_hold_is_offered_again_and_cannot_be_booked_without_any_sweeper(make_client: Any) -> None:
    c = make_client(background=False, hold_ttl_seconds=1)  # no sweeper runs in this app
    ctx = setup_practice(c)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(3)
    before = search(c, pid, vt, day)
    h = hold(c, pr, vt, before[1]["start"]).json()
    assert before[1]["start"] not in starts(search(c, pid, vt, day))
    time.sleep(1.3)
    assert search(c, pid, vt, day) == before
    r = book(c, h["id"])
    assert r.status_code == 410 and r.json()["code"] == "hold_expired"
    assert c.get(f"/v1/holds/{h['id']}").status_code == 410
    # someone else may take it now
    assert hold(c, pr, vt, before[1]["start"]).status_code == 201


def test_booked_hold_cannot_be_booked_twice(client: Any) -> None:
    ctx = setup_practice(client)
    pr, vt = ctx["practitioners"][0], ctx["visit_types"][30]
    slot = search(client, ctx["practice_id"], vt, next_weekday(4))[0]
    h = hold(client, pr, vt, slot["start"]).json()
    first = book(client, h["id"])
    assert first.status_code == 201
    second = book(client, h["id"])
    assert second.status_code == 409 and second.json()["code"] == "hold_used"
    assert client.delete(f"/v1/holds/{h['id']}").status_code == 409


def test_idempotency_key_replays_the_first_answer(client: Any, rsync: Any) -> None:
    ctx = setup_practice(client)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(2)
    slot = search(client, pid, vt, day)[2]
    first = hold(client, pr, vt, slot["start"], **{"Idempotency-Key": "h-1"})
    again = hold(client, pr, vt, slot["start"], **{"Idempotency-Key": "h-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = client.post(
        "/v1/holds",
        json={"practitioner_id": pr, "visit_type_id": vt, "start": search(client, pid, vt, day)[5]["start"]},
        headers={"Idempotency-Key": "h-1"},
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    b1 = book(client, first.json()["id"], **{"Idempotency-Key": "b-1"})
    b2 = book(client, first.json()["id"], **{"Idempotency-Key": "b-1"})
    assert b1.status_code == b2.status_code == 201 and b1.json() == b2.json()
    stream = f"bk:v1:{{p:{pid}}}:events"
    kinds = [e.__struct_config__.tag for e in (events.from_stream(i, f) for i, f in rsync.xrange(stream))]
    assert kinds.count("hold") == 1 and kinds.count("book") == 1


def test_every_change_appends_its_event_in_the_same_script(client: Any, rsync: Any) -> None:
    ctx = setup_practice(client)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(2)
    slots = search(client, pid, vt, day)
    h1 = hold(client, pr, vt, slots[0]["start"]).json()
    client.delete(f"/v1/holds/{h1['id']}")
    h2 = hold(client, pr, vt, slots[1]["start"]).json()
    appt = book(client, h2["id"]).json()
    client.post(f"/v1/appointments/{appt['id']}/cancel")
    decoded = [events.from_stream(i, f) for i, f in rsync.xrange(f"bk:v1:{{p:{pid}}}:events")]
    kinds = [e.__struct_config__.tag for e in decoded]
    assert kinds == [
        "practice",
        "practitioner",
        "visit_type",
        "schedule",
        "search",
        "hold",
        "release",
        "hold",
        "book",
        "cancel",
    ]
    audited = [e for e in decoded if e.seq]
    assert [e.seq for e in audited] == list(range(1, len(audited) + 1))
    booked = next(e for e in decoded if isinstance(e, events.AppointmentBooked))
    assert booked.appointment_id == appt["id"] and booked.hold_id == h2["id"]
    assert booked.data.patient.email == "ada@example.org"  # the record for the persister
    raw = booked.detail_raw.lower()  # never in the audit detail: the name, the e-mail (random hex ids may hold "ada")
    assert "ada l" not in raw and "example.org" not in raw and '"patient"' not in raw
    assert decoded[4].detail.count == len(slots)  # the search audit says how many came back


def test_expired_holds_are_audited_by_the_sweeper(make_client: Any, rsync: Any) -> None:
    c = make_client(hold_ttl_seconds=1, background=True)  # the sweeper runs in this app
    ctx = setup_practice(c)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    slot = search(c, pid, vt, next_weekday(2))[0]
    h = hold(c, pr, vt, slot["start"]).json()
    deadline = time.time() + 10
    while time.time() < deadline:
        decoded = [events.from_stream(i, f) for i, f in rsync.xrange(f"bk:v1:{{p:{pid}}}:events")]
        expired = [e for e in decoded if isinstance(e, events.HoldExpired)]
        if expired:
            break
        time.sleep(0.2)
    assert [e.hold_id for e in expired] == [h["id"]]


def test_min_notice_and_horizon_limit_what_is_offered_and_held(client: Any) -> None:
    ctx = setup_practice(client, horizon_days=5, min_notice_minutes=2 * 24 * 60)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    today = dt.date.today()
    found = search(client, pid, vt, today, days=10)
    first, last = dt.datetime.fromisoformat(found[0]["start"]), dt.datetime.fromisoformat(found[-1]["start"])
    now = dt.datetime.now(dt.timezone.utc)
    assert first >= now + dt.timedelta(days=2)
    assert last <= now + dt.timedelta(days=5)
    too_soon = (now + dt.timedelta(days=1)).astimezone(first.tzinfo).replace(hour=9, minute=0, second=0, microsecond=0)
    r = hold(client, pr, vt, too_soon.isoformat())
    assert r.status_code == 409 and r.json()["code"] == "slot_unavailable"


def test_every_search_answer_says_it_is_not_stale(client: Any) -> None:
    """API.md: the answer carries "stale": false (true only when served from the last known availability)."""
    ctx = setup_practice(client)
    r = client.get(
        f"/v1/practices/{ctx['practice_id']}/availability",
        params={"date": next_weekday(1).isoformat(), "visit_type_id": ctx["visit_types"][30], "days": 2},
    )
    assert r.status_code == 200 and r.json()["stale"] is False and r.json()["slots"]
    assert "age" not in r.headers
