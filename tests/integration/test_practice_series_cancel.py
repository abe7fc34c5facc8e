"""Cancelling a booked series (API.md "series"; issue 23 item 4): ``POST /v1/series/{id}/cancel`` cancels every
occurrence still ahead in ONE script (lua/series_cancel.lua), each exactly as a single cancel (the prelude's
cancel_appt, shared with lua/cancel.lua): its 'cancel' event, its occupation (buffers included) and its place in a
daily limit freed, its interval offered to the waitlist; one cancelled before or that has begun stays as it is;
an occurrence rescheduled onto another practitioner is cancelled there; a retry changes nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis import asyncio as aioredis

from engine import keys, scripts
from engine.model import SYSTEM
from engine.service import BookingEngine
from tests.integration import test_practice_series
from tests.integration.test_practice_series import PATIENT, as_patient
from tests.support.clock import Clock
from tests.support.config import settings_for
from tests.support.http import search, setup_practice

pytestmark = pytest.mark.integration
world = test_practice_series.world  # the same fixture: a Redis database, a PostgreSQL database, a client

TZ = "Europe/Paris"


def practice(c: Any, practitioners: int = 1, durations: tuple[int, ...] = (30,)) -> dict[str, Any]:
    """A Paris practice open 08:00-12:00 on weekdays; ``monday``: the Monday a series of 6 weekly occurrences at
    09:00 starts on (at least a week ahead)."""
    monday = dt.date.today() + dt.timedelta(days=7 - dt.date.today().weekday() + 7)
    ctx = setup_practice(c, tz=TZ, durations=durations, practitioners=practitioners,
                         horizon_days=(monday - dt.date.today()).days + 7 * 7)  # fmt: skip
    ctx["vt"], ctx["dr"], ctx["monday"] = ctx["visit_types"][durations[0]], ctx["practitioners"][0], monday
    return ctx


def at(ctx: dict[str, Any], week: int, hhmm: str = "09:00") -> str:
    day = ctx["monday"] + dt.timedelta(weeks=week)
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), ZoneInfo(TZ)).isoformat()


def book_series(c: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    body = {"practitioner_id": ctx["dr"], "visit_type_id": ctx["vt"], "start": at(ctx, 0),
            "repeat": {"every_days": 7, "count": 6}}  # fmt: skip
    s = c.post("/v1/holds", json=body)
    assert s.status_code == 201, s.text
    b = c.post("/v1/appointments", json={"hold_id": s.json()["id"], "patient": PATIENT})
    assert b.status_code == 201, b.text
    return b.json()  # type: ignore[no-any-return]


def join(c: Any, ctx: dict[str, Any], week: int, vt: str, start: str, end: str, pr: str | None = None) -> str:
    day = (ctx["monday"] + dt.timedelta(weeks=week)).isoformat()
    body: dict[str, Any] = {"visit_type_id": vt, "from_date": day, "to_date": day, "from_time": start,
                            "to_time": end, "patient": {"name": "W", "email": f"w{week}@example.org"}}  # fmt: skip
    if pr:
        body["practitioner_id"] = pr
    r = c.post(f"/v1/practices/{ctx['practice_id']}/waitlist", json=body)
    assert r.status_code == 201 and r.json()["status"] == "waiting", r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def cancels(r: Any, pid: str) -> list[dict[str, Any]]:
    """The 'cancel' events of the practice's stream: appointment id, request id, detail."""
    out = []
    for _, f in r.xrange(keys.events(pid)):
        if f[b"type"] == b"cancel":
            out.append({"appointment_id": f[b"appointment_id"].decode(), "request_id": f[b"request_id"].decode(),
                        "detail": json.loads(f[b"detail"])})  # fmt: skip
    return out


def free_at(
    c: Any, ctx: dict[str, Any], vt: str, hhmm: str, weeks: Iterable[int] = range(6), pr: str | None = None
) -> list[bool]:
    found = []
    for w in weeks:
        slots = search(c, ctx["practice_id"], vt, ctx["monday"] + dt.timedelta(weeks=w))
        found.append(any(s["start"][11:16] == hhmm and (pr is None or s["practitioner_id"] == pr) for s in slots))
    return found


def test_a_series_cancel_is_one_atomic_step(world: dict[str, Any]) -> None:
    """A reader watching every occurrence's status in one transaction while the series is cancelled sees them all
    booked or all cancelled, never some of each (the occurrences are cancelled in one script, not one by one)."""
    c, r = world["client"], world["redis"]
    ctx = practice(c)
    b = book_series(c, ctx)
    pid, appts = ctx["practice_id"], b["appointments"]
    seen: set[tuple[bytes | None, ...]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            pipe = r.pipeline(transaction=True)
            for a in appts:
                pipe.hget(keys.appointment(pid, a["id"]), "status")
            seen.add(tuple(pipe.execute()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        time.sleep(0.05)
        done = as_patient(c, b["manage_token"], "POST", f"/v1/series/{b['series_id']}/cancel", json={"reason": "r"})
        time.sleep(0.05)
    finally:
        stop.set()
        watcher.join()
    assert done.status_code == 200, done.text
    assert [a["status"] for a in done.json()["appointments"]] == ["cancelled"] * 6
    assert seen == {(b"booked",) * 6, (b"cancelled",) * 6}, seen
    events = cancels(r, pid)
    assert sorted(e["appointment_id"] for e in events) == sorted(a["id"] for a in appts)
    assert len({e["request_id"] for e in events}) == 1  # one request, one step
    assert all(e["detail"]["version"] == 2 and e["detail"]["has_reason"] for e in events)


def test_a_series_cancel_frees_buffers_and_daily_limits_and_offers_each_occurrence(world: dict[str, Any]) -> None:
    """A 30-minute visit type with a 15-minute after-buffer and at most 1 a day: cancelling the series frees each
    occurrence's buffer (a 15-minute visit at 09:30 is offered again), its place in the daily limit (another
    30-minute visit that day can be held), and offers each freed occupation to the waitlist, the buffer too (an
    entry waiting for 09:30-09:45 is offered 09:30); the occurrence cancelled before is not cancelled again."""
    c, r = world["client"], world["redis"]
    ctx = practice(c, durations=(30, 15))
    vt, short = ctx["vt"], ctx["visit_types"][15]
    p = c.patch(f"/v1/visit-types/{vt}", json={"buffer_after_minutes": 15, "max_per_day": 1})
    assert p.status_code == 200, p.text
    b = book_series(c, ctx)
    token, appts = b["manage_token"], b["appointments"]
    assert free_at(c, ctx, short, "09:30") == [False] * 6  # inside the after-buffer
    assert free_at(c, ctx, vt, "10:00") == [False] * 6  # the daily limit
    one = as_patient(c, token, "POST", f"/v1/appointments/{appts[2]['id']}/cancel", json={})
    assert one.status_code == 200, one.text
    in_buffer = join(c, ctx, 1, short, "09:30", "09:45")  # only the buffer's freeing can offer it this
    same = join(c, ctx, 4, vt, "09:00", "09:30")
    done = as_patient(c, token, "POST", f"/v1/series/{b['series_id']}/cancel", json={})
    assert done.status_code == 200, done.text
    got = done.json()["appointments"]
    assert [a["status"] for a in got] == ["cancelled"] * 6
    assert got[2]["version"] == 2 and all(a["version"] == 2 for a in got)  # the one cancelled before: unchanged
    events = cancels(r, ctx["practice_id"])
    assert [e["appointment_id"] for e in events].count(appts[2]["id"]) == 1 and len(events) == 6
    offered = c.get(f"/v1/waitlist/{in_buffer}").json()
    assert offered["status"] == "offered" and offered["offer"]["start"] == at(ctx, 1, "09:30"), offered
    offered = c.get(f"/v1/waitlist/{same}").json()
    assert offered["status"] == "offered" and offered["offer"]["start"] == appts[4]["start"], offered
    # every other occurrence's buffer and daily place is free again (weeks 1 and 4 hold the offers)
    assert free_at(c, ctx, short, "09:30", (0, 2, 3, 5)) == [True] * 4
    hold = c.post("/v1/holds", json={"practitioner_id": ctx["dr"], "visit_type_id": vt, "start": at(ctx, 5, "10:00")})
    assert hold.status_code == 201, hold.text


def test_a_series_cancel_reaches_an_occurrence_rescheduled_onto_another_practitioner(world: dict[str, Any]) -> None:
    """Each occurrence lives on its own: one moved to Dr 1 at 10:00 is cancelled there by the series cancel, and
    Dr 1's freed time is offered to Dr 1's waitlist."""
    c = world["client"]
    ctx = practice(c, practitioners=2)
    vt, dr1 = ctx["vt"], ctx["practitioners"][1]
    b = book_series(c, ctx)
    token, appts = b["manage_token"], b["appointments"]
    h = c.post("/v1/holds", json={"practitioner_id": dr1, "visit_type_id": vt, "start": at(ctx, 3, "10:00")})
    assert h.status_code == 201, h.text
    moved = as_patient(
        c, token, "POST", f"/v1/appointments/{appts[3]['id']}/reschedule", json={"hold_id": h.json()["id"]}
    )
    assert moved.status_code == 200 and moved.json()["practitioner_id"] == dr1, moved.text
    entry = join(c, ctx, 3, vt, "10:00", "10:30", pr=dr1)
    assert free_at(c, ctx, vt, "10:00", range(3, 4), pr=dr1) == [False]
    done = as_patient(c, token, "POST", f"/v1/series/{b['series_id']}/cancel", json={})
    assert done.status_code == 200, done.text
    got = done.json()["appointments"]
    assert [a["status"] for a in got] == ["cancelled"] * 6 and got[3]["practitioner_id"] == dr1
    offered = c.get(f"/v1/waitlist/{entry}").json()
    assert offered["status"] == "offered" and offered["offer"]["practitioner_id"] == dr1, offered
    assert free_at(c, ctx, vt, "09:00", pr=ctx["dr"]) == [True] * 6


def test_a_series_cancel_leaves_the_occurrences_that_began_and_a_retry_changes_nothing(
    world: dict[str, Any],
) -> None:
    c, r = world["client"], world["redis"]
    ctx = practice(c)
    b = book_series(c, ctx)
    token, appts = b["manage_token"], b["appointments"]
    second = dt.datetime.fromisoformat(appts[1]["start"]).timestamp()
    c.app.state.engine.rt.clock = Clock(second + 60)  # the second occurrence began a minute ago
    done = as_patient(c, token, "POST", f"/v1/series/{b['series_id']}/cancel", json={})
    assert done.status_code == 200, done.text
    assert [a["status"] for a in done.json()["appointments"]] == ["booked"] * 2 + ["cancelled"] * 4
    events = cancels(r, ctx["practice_id"])
    assert sorted(e["appointment_id"] for e in events) == sorted(a["id"] for a in appts[2:])
    again = as_patient(c, token, "POST", f"/v1/series/{b['series_id']}/cancel", json={})
    assert again.status_code == 200 and again.json() == done.json()
    assert len(cancels(r, ctx["practice_id"])) == 4  # the retry cancelled nothing


def test_the_script_checks_every_occurrence_before_it_cancels_any(world: dict[str, Any]) -> None:
    """lua/series_cancel.lua itself, past the engine's own reading: an occurrence whose practitioner is not the one
    the caller read (moved meanwhile) answers RETRY with nothing cancelled, not even the occurrences before it; an
    occurrence that began between the caller's read and the script stays booked."""
    c, r = world["client"], world["redis"]
    ctx = practice(c, practitioners=2)
    b = book_series(c, ctx)
    pid, sid, appts = ctx["practice_id"], b["series_id"], b["appointments"]
    dr, other = ctx["dr"], ctx["practitioners"][1]

    async def cancel(occ: list[tuple[str, str]], now_ms: int) -> Any:
        eng = BookingEngine(aioredis.Redis.from_url(world["redis_url"]), settings_for(world["redis_url"]))
        try:
            kits = [await eng.appointments.offers.kit(pid, p, intervals=6) for p in sorted({p for _, p in occ})]
            return await scripts.series_cancel(
                eng.rt.lua, now_ms=now_ms, practice_id=pid, series_id=sid, occurrences=occ, kits=kits, reason="",
                ctx=SYSTEM,
            )  # fmt: skip
        finally:
            await eng.rt.redis.aclose()

    def statuses() -> list[bytes]:
        return [r.hget(keys.appointment(pid, a["id"]), "status") for a in appts]

    now_ms = int(time.time() * 1000)
    wrong = [(a["id"], dr) for a in appts[:-1]] + [(appts[-1]["id"], other)]
    assert asyncio.run(cancel(wrong, now_ms)) is None
    assert statuses() == [b"booked"] * 6 and cancels(r, pid) == []
    began = int(dt.datetime.fromisoformat(appts[1]["start"]).timestamp() * 1000)
    res = asyncio.run(cancel([(a["id"], dr) for a in appts], began))
    assert res == scripts.SeriesCancelled(4)
    assert statuses() == [b"booked"] * 2 + [b"cancelled"] * 4


def test_a_series_cancel_frees_the_room_each_occurrence_claimed(world: dict[str, Any]) -> None:
    """A series of a visit type that needs a room: while booked, another practitioner cannot take the room at those
    times; the series cancel frees every occurrence's room claim (through the shared cancel_appt, as a single
    cancel does) and names the room in each 'cancel' event."""
    c, r = world["client"], world["redis"]
    ctx = practice(c, practitioners=2)
    pid, dr1 = ctx["practice_id"], ctx["practitioners"][1]
    room = c.post(f"/v1/practices/{pid}/resources", json={"name": "Ultrasound", "kind": "room"}).json()["id"]
    assert c.patch(f"/v1/visit-types/{ctx['vt']}", json={"resource_ids": [room]}).status_code == 200
    b = book_series(c, ctx)
    assert r.zcard(keys.resource_claims(pid)) == 6
    assert free_at(c, ctx, ctx["vt"], "09:00", pr=dr1) == [False] * 6  # the room is taken
    done = as_patient(c, b["manage_token"], "POST", f"/v1/series/{b['series_id']}/cancel", json={})
    assert done.status_code == 200, done.text
    assert r.zcard(keys.resource_claims(pid)) == 0
    assert free_at(c, ctx, ctx["vt"], "09:00", pr=dr1) == [True] * 6
    assert [e["detail"]["resource_ids"] for e in cancels(r, pid)] == [[room]] * 6
