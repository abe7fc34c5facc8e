"""Waitlist offers occupy what a booking would (API.md, "Buffers, daily limits, ..."; issue 23, item 6): an offer
respects its visit type's ``max_per_day`` exactly as hold.lua does (live claims of that visit type on the local
date of its start, DST days by local date), counts toward it once made, and a buffered claim given up offers its
whole occupation. Over HTTP on the real Redis; the Lua local-date arithmetic compared with engine/timeutil.py."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis as redis_sync

from engine import timeutil
from engine.scripts import registry
from tests.integration.test_persistence import run_reconcile
from tests.integration.test_practice_buffers import PATIENT, at, book, hold
from tests.integration.test_practice_reconcile import world  # noqa: F401 - the fixture (Redis, PostgreSQL, persister)
from tests.integration.test_schedule_and_tz import next_transition
from tests.support.config import WEEKDAYS
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration


def visit_type(c: Any, pid: str, minutes: int, **rules: Any) -> str:
    r = c.post(f"/v1/practices/{pid}/visit-types", json={"name": f"{minutes} {rules}", "duration_minutes": minutes,
                                                         **rules})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def join(c: Any, pid: str, vt: str, day: dt.date, start: str, end: str) -> str:
    body = {"visit_type_id": vt, "from_date": day.isoformat(), "to_date": day.isoformat(), "from_time": start,
            "to_time": end, "patient": PATIENT}  # fmt: skip
    r = c.post(f"/v1/practices/{pid}/waitlist", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def entry(c: Any, entry_id: str) -> dict[str, Any]:
    r = c.get(f"/v1/waitlist/{entry_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_no_offer_where_the_daily_limit_is_reached_and_one_once_a_claim_of_that_day_is_released(client: Any) -> None:
    ctx = setup_practice(client, durations=(30,))
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    limited = visit_type(client, pid, 30, max_per_day=2)
    day = next_weekday(2)
    free = search(client, pid, limited, day)
    book(client, dr, limited, at(free, "08:00"))
    held = hold(client, dr, limited, at(free, "11:00"))  # the second of the day: the limit is reached
    assert held.status_code == 201, held.text
    other = book(client, dr, plain, at(free, "10:00"))  # no limit on this visit type
    wid = join(client, pid, limited, day, "10:00", "11:30")
    assert client.post(f"/v1/appointments/{other['id']}/cancel", json={}).status_code == 200
    got = entry(client, wid)
    assert got["status"] == "waiting" and got["offer"] is None, got  # 10:00 would be a third that day
    assert search(client, pid, limited, day) == []  # search agrees: none of that visit type is offered that day
    # releasing the held one frees a place and its interval: the entry is offered it, as a hold would get it
    assert client.delete(f"/v1/holds/{held.json()['id']}").status_code == 204
    got = entry(client, wid)
    assert got["status"] == "offered" and got["offer"]["start"] == at(free, "11:00"), got
    # the offer counts toward the limit, as a hold does: no third claim of that visit type that day
    assert search(client, pid, limited, day) == []
    refused = hold(client, dr, limited, at(free, "09:00"))
    assert refused.status_code == 409 and refused.json()["code"] == "slot_unavailable", refused.text
    # the limit is per visit type: the plain one is still offered and held there
    assert hold(client, dr, plain, at(free, "09:00")).status_code == 201


def test_a_declined_offer_goes_to_the_next_entry_only_within_the_limit(client: Any) -> None:
    """The offer walk counts the offers it has just made: one freed interval, two entries, one place left."""
    ctx = setup_practice(client, durations=(30,))
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    limited = visit_type(client, pid, 30, max_per_day=1)
    day = next_weekday(3)
    free = search(client, pid, limited, day)
    big = visit_type(client, pid, 60)
    appt = book(client, dr, big, at(free, "09:00"))  # 09:00-10:00 frees two 30-minute slots
    first, second = join(client, pid, limited, day, "09:00", "10:00"), join(client, pid, limited, day, "09:00", "10:00")
    assert client.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    a, b = entry(client, first), entry(client, second)
    assert a["status"] == "offered" and a["offer"]["start"] == at(free, "09:00"), a
    assert b["status"] == "waiting" and b["offer"] is None, b  # 09:30 would be the second of that day
    assert hold(client, dr, plain, at(free, "09:30")).status_code == 201  # free to all, but not of `limited`


@pytest.mark.parametrize("spring", [True, False], ids=["23-hour day", "25-hour day"])
def test_an_offer_counts_by_the_local_date_of_its_start(make_client: Any, spring: bool) -> None:
    """Europe/Paris is ahead of UTC: local 00:15 is the previous UTC day. A claim at 00:15 of the next local date
    does not count on the DST day; an offer late on the DST day is made."""
    tz = "Europe/Paris"
    day = dt.date.fromisoformat(next_transition(tz, spring))
    horizon = min(730, (day - dt.date.today()).days + 3)
    c = make_client()
    ctx = setup_practice(c, tz=tz, durations=(30,), horizon_days=horizon,
                         weekly=[{"day": d, "start": "00:00", "end": "24:00"} for d in WEEKDAYS])  # fmt: skip
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    limited = visit_type(c, pid, 30, max_per_day=1)
    nxt = search(c, pid, limited, day + dt.timedelta(days=1))
    today = search(c, pid, limited, day)
    book(c, dr, limited, at(nxt, "00:00"))  # the UTC day of the DST day's evening: a UTC count would refuse
    other = book(c, dr, plain, at(today, "22:30"))
    wid = join(c, pid, limited, day, "22:00", "24:00")
    assert c.post(f"/v1/appointments/{other['id']}/cancel", json={}).status_code == 200
    got = entry(c, wid)
    assert got["status"] == "offered" and got["offer"]["start"] == at(today, "22:30"), got
    assert hold(c, dr, limited, at(today, "10:00")).status_code == 409  # the offer is that date's one
    # and a freed interval at the next date's start is not offered while that date's one claim stands
    second = book(c, dr, plain, at(nxt, "01:00"))
    wid2 = join(c, pid, limited, day + dt.timedelta(days=1), "00:00", "02:00")
    assert c.post(f"/v1/appointments/{second['id']}/cancel", json={}).status_code == 200
    assert entry(c, wid2)["status"] == "waiting"


def test_a_buffered_cancellation_offers_its_whole_occupation(client: Any) -> None:
    """A 30-minute visit with 15 minutes before and after occupies 08:45-09:45: cancelled, the waitlist is offered
    the slots of that whole interval (a 15-minute entry waiting for 08:45-09:00 takes the before-buffer)."""
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=15)
    pid, dr = ctx["practice_id"], ctx["practitioners"][0]
    short = ctx["visit_types"][15]
    surgery = visit_type(client, pid, 30, buffer_before_minutes=15, buffer_after_minutes=15)
    day = next_weekday(1)
    free = search(client, pid, short, day)
    appt = book(client, dr, surgery, at(search(client, pid, surgery, day), "09:00"))
    taken = {s["start"][11:16] for s in free} - {s["start"][11:16] for s in search(client, pid, short, day)}
    assert taken == {"08:45", "09:00", "09:15", "09:30"}  # the occupation
    early, late = join(client, pid, short, day, "08:45", "09:00"), join(client, pid, short, day, "09:30", "09:45")
    assert client.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    assert entry(client, early)["offer"]["start"] == at(free, "08:45")  # inside the before-buffer
    assert entry(client, late)["offer"]["start"] == at(free, "09:30")  # inside the after-buffer


def test_a_declined_buffered_offer_offers_its_whole_occupation(client: Any) -> None:
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=15)
    pid, dr = ctx["practice_id"], ctx["practitioners"][0]
    short = ctx["visit_types"][15]
    surgery = visit_type(client, pid, 30, buffer_after_minutes=15)
    day = next_weekday(1)
    free = search(client, pid, short, day)
    appt = book(client, dr, surgery, at(search(client, pid, surgery, day), "10:00"))  # 10:00-10:45
    first = join(client, pid, surgery, day, "10:00", "10:30")
    assert client.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    offered = entry(client, first)
    assert offered["status"] == "offered", offered
    late = join(client, pid, short, day, "10:30", "10:45")  # waits for the offer's after-buffer
    token_free = client.post(f"/v1/waitlist/{first}/decline", json={})
    assert token_free.status_code == 200, token_free.text
    assert entry(client, late)["offer"]["start"] == at(free, "10:30")


# ---------------------------------------------------------------- the Lua local date = engine/timeutil.py's
DAY_SCRIPT = """
local kit = {zat = {}, zoff = {}}
local n = tonumber(ARGV[1])
for i = 1, n do kit.zat[i], kit.zoff[i] = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1]) end
local out = {}
for i = 2 * n + 2, #ARGV do
  local ds, de = wl_day(kit, tonumber(ARGV[i]))
  out[#out + 1] = ds
  out[#out + 1] = de
end
return out
"""


@pytest.mark.parametrize(
    "tz",
    ["Europe/Paris", "America/Santiago", "America/Havana", "Australia/Lord_Howe", "Asia/Tokyo", "Africa/Casablanca"],
)
def test_lua_local_dates_match_timeutil(redis_db: str, tz: str) -> None:
    """Santiago and Havana change their clocks at midnight (a skipped or repeated midnight), Lord Howe by 30
    minutes, Casablanca several times a year: every local date over two years, probed at its start, middle and
    last second, has the bounds timeutil.day_bounds gives."""
    zone = ZoneInfo(tz)
    first = dt.date.today()
    lo = int(dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()) - 3 * 86400
    table = timeutil.offset_table(zone, lo, lo + 740 * 86400)
    r = redis_sync.Redis.from_url(redis_db)
    try:
        days = [first + dt.timedelta(days=i) for i in range(731)]
        expect = [timeutil.day_bounds(d, zone) for d in days]
        probes = [t for ds, de in expect for t in (ds, (ds + de) // 2, de - 1)]
        got = r.eval(registry.compose(DAY_SCRIPT), 0, len(table), *(x for p in table for x in p), *probes)
        pairs = [(int(got[i]), int(got[i + 1])) for i in range(0, len(got), 2)]
        assert pairs == [b for b in expect for _ in range(3)]
    finally:
        r.close()


# ---------------------------------------------------------------- reconciliation (restore_waitlist)
def _offered(lab: dict[str, Any], most: int, booked_too: bool) -> dict[str, Any]:
    """A limited visit type, an entry offered 10:00 by a cancellation (and, with ``booked_too``, a booking of that
    visit type at 11:00), all of it stored by the persister."""
    c = lab["client"]
    ctx = setup_practice(c, durations=(30,))
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    limited = visit_type(c, pid, 30, max_per_day=most)
    day = next_weekday(4)
    free = search(c, pid, limited, day)
    other = book(c, dr, plain, at(free, "10:00"))
    wid = join(c, pid, limited, day, "10:00", "10:30")
    assert c.post(f"/v1/appointments/{other['id']}/cancel", json={}).status_code == 200
    assert entry(c, wid)["status"] == "offered"
    if booked_too:
        book(c, dr, limited, at(free, "11:00"))
    return {"pid": pid, "dr": dr, "vt": limited, "day": day, "free": free, "entry": wid}


def _lose_and_reconcile(lab: dict[str, Any]) -> None:
    lab["persister"].drain()
    lab["redis"].flushdb()
    asyncio.run(run_reconcile(lab["redis_url"], lab["db"], []))


def test_a_restored_offer_counts_toward_its_daily_limit(world: dict[str, Any]) -> None:  # noqa: F811
    c, w = world["client"], _offered(world, 1, booked_too=False)
    _lose_and_reconcile(world)
    got = entry(c, w["entry"])
    assert got["status"] == "offered" and got["offer"]["start"] == at(w["free"], "10:00"), got
    refused = hold(c, w["dr"], w["vt"], at(w["free"], "11:00"))  # the restored offer is that date's one
    assert refused.status_code == 409, refused.text
    assert search(c, w["pid"], w["vt"], w["day"]) == []


def test_an_offer_that_would_exceed_the_limit_does_not_come_back(world: dict[str, Any]) -> None:  # noqa: F811
    """Made within the limit (2), the limit then lowered to 1 with a booking standing: after the loss, the booking
    comes back and the offer does not (the entry waits again), as a hold would be refused."""
    c, w = world["client"], _offered(world, 2, booked_too=True)
    r = c.patch(f"/v1/visit-types/{w['vt']}", json={"max_per_day": 1})
    assert r.status_code == 200, r.text
    _lose_and_reconcile(world)
    got = entry(c, w["entry"])
    assert got["status"] == "waiting" and got["offer"] is None, got
    assert search(c, w["pid"], w["vt"], w["day"]) == []  # the booking alone reaches the lowered limit
