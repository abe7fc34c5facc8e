"""Daily limits (API.md, "Buffers, daily limits, ..."): at most ``max_per_day`` live claims (holds and bookings)
per practitioner, visit type and local date, counted in the claim script itself; a release, cancel or expiry
frees a place at once; 23- and 25-hour days count by local date. The concurrent holds through a real 2-worker
server: tests/system/test_practice_concurrency.py."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.integration.test_schedule_and_tz import next_transition
from tests.support.config import WEEKDAYS
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration

PATIENT = {"name": "L", "email": "l@example.org"}


def hold(c: Any, pr: str, vt: str, start: str) -> Any:
    return c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})


def limited(c: Any, pid: str, minutes: int, most: int | None) -> str:
    r = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "new patient", "duration_minutes": minutes,
                                                          "max_per_day": most})  # fmt: skip
    assert r.status_code == 201 and r.json()["max_per_day"] == most, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def test_a_booking_counts_and_its_cancel_frees_the_place(client: Any) -> None:
    ctx = setup_practice(client, durations=(15,))
    pid, dr = ctx["practice_id"], ctx["practitioners"][0]
    vt = limited(client, pid, 30, 1)
    day = next_weekday(3)
    slots = search(client, pid, vt, day)
    h = hold(client, dr, vt, slots[0]["start"])
    assert h.status_code == 201, h.text
    r = client.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": PATIENT})
    assert r.status_code == 201, r.text
    appt = r.json()
    assert search(client, pid, vt, day) == []
    refused = hold(client, dr, vt, slots[-1]["start"])
    assert refused.status_code == 409 and refused.json()["code"] == "slot_unavailable"
    assert client.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    assert search(client, pid, vt, day) == slots
    assert hold(client, dr, vt, slots[-1]["start"]).status_code == 201


def test_an_expired_hold_frees_its_place_at_once(make_client: Any) -> None:
    c = make_client(hold_ttl_seconds=1)
    ctx = setup_practice(c, durations=(15,))
    pid, dr = ctx["practice_id"], ctx["practitioners"][0]
    vt = limited(c, pid, 30, 1)
    day = next_weekday(4)
    slots = search(c, pid, vt, day)
    assert hold(c, dr, vt, slots[0]["start"]).status_code == 201
    assert hold(c, dr, vt, slots[-1]["start"]).status_code == 409
    time.sleep(1.2)  # the hold expires (no sweeper needed: the scripts compare expires_ms with now)
    assert search(c, pid, vt, day) == slots
    assert hold(c, dr, vt, slots[-1]["start"]).status_code == 201


@pytest.mark.parametrize("spring", [True, False], ids=["23-hour day", "25-hour day"])
def test_dst_days_count_by_local_date(make_client: Any, spring: bool) -> None:
    tz = "Europe/Paris"
    day = dt.date.fromisoformat(next_transition(tz, spring))
    horizon = min(730, (day - dt.date.today()).days + 3)
    c = make_client()
    ctx = setup_practice(c, tz=tz, durations=(15,), horizon_days=horizon,
                         weekly=[{"day": d, "start": "00:00", "end": "24:00"} for d in WEEKDAYS])  # fmt: skip
    pid, dr = ctx["practice_id"], ctx["practitioners"][0]
    vt = limited(c, pid, 15, 2)
    today, nxt = search(c, pid, vt, day), search(c, pid, vt, day + dt.timedelta(days=1))
    hours = 23 if spring else 25
    first = dt.datetime.fromisoformat(today[0]["start"])
    last = dt.datetime.fromisoformat(today[-1]["start"])
    assert (last - first) == dt.timedelta(hours=hours, minutes=-15)  # the test really runs on such a day
    # the last slot of a 25-hour day lies more than 24 h after local midnight; the first of the day after a
    # 23-hour day less than 24 h after the 23-hour day's midnight: both must count on their own local date
    assert hold(c, dr, vt, nxt[0]["start"]).status_code == 201  # the next date's: counts there only
    assert hold(c, dr, vt, today[0]["start"]).status_code == 201
    assert hold(c, dr, vt, today[-1]["start"]).status_code == 201
    middle = today[len(today) // 2]["start"]
    assert hold(c, dr, vt, middle).status_code == 409  # the third of that local date
    assert search(c, pid, vt, day) == []
    assert search(c, pid, vt, day + dt.timedelta(days=1)) == nxt[1:]
    # the next date's second: 00:15 there is still the UTC day of the two taken above (a UTC day would refuse it)
    assert hold(c, dr, vt, nxt[1]["start"]).status_code == 201
    assert search(c, pid, vt, day + dt.timedelta(days=1)) == []
    assert hold(c, dr, vt, nxt[-1]["start"]).status_code == 409
