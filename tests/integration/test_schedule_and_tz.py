"""Schedules recompute availability before answering; searches on DST days give the right instants."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.support.config import WEEKDAYS
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration

ALL_DAY = [{"day": d, "start": "00:00", "end": "24:00"} for d in WEEKDAYS]


def starts(c: Any, ctx: dict[str, Any], day: dt.date, minutes: int = 30) -> list[str]:
    return [s["start"] for s in search(c, ctx["practice_id"], ctx["visit_types"][minutes], day)]


def test_schedule_change_reports_conflicts_and_never_touches_bookings(client: Any) -> None:
    ctx = setup_practice(client)
    pr, vt = ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(0, after_days=3)  # a Monday
    slot = next(s for s in search(client, ctx["practice_id"], vt, day) if s["start"][11:16] == "10:00")
    h = client.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]}).json()
    appt = client.post(
        "/v1/appointments", json={"hold_id": h["id"], "patient": {"name": "N", "email": "n@example.org"}}
    ).json()
    # Mondays now only in the afternoon: the 10:00 booking is no longer covered
    weekly = [{"day": d, "start": "14:00" if d == "mon" else "08:00", "end": "18:00"} for d in WEEKDAYS]
    r = client.put(f"/v1/practitioners/{pr}/schedule", json={"weekly": weekly})
    assert r.status_code == 200
    assert r.json()["conflicts"] == [appt["id"]]
    assert client.get(f"/v1/appointments/{appt['id']}").json()["status"] == "booked"
    mondays = starts(client, ctx, day)
    assert mondays[0][11:16] == "14:00" and mondays[-1][11:16] == "17:30"  # search already reflects it
    # a window covering 10:00 again: the booked interval is still not offered
    r = client.put(f"/v1/practitioners/{pr}/schedule", json={"weekly": ALL_DAY})
    assert r.json()["conflicts"] == []
    assert slot["start"] not in starts(client, ctx, day)
    got = client.get(f"/v1/practitioners/{pr}/schedule").json()
    assert got["weekly"] == ALL_DAY and got["slot_step_minutes"] == 15


def test_closures_and_shorter_horizon_remove_slots(client: Any) -> None:
    ctx = setup_practice(client, horizon_days=30)
    pr = ctx["practitioners"][0]
    day = next_weekday(2, after_days=3)
    assert starts(client, ctx, day)
    far = day + dt.timedelta(days=20)
    assert starts(client, ctx, far)
    closure_day = day.isoformat()
    body = {
        "weekly": [{"day": d, "start": "08:00", "end": "12:00"} for d in WEEKDAYS],
        # 12: the day after the closure (at most 10 days on: a Wednesday 3 to 9 days on) stays inside the new
        # horizon, `far` (23 days on or more) does not (with 10, a run on a Monday put that day at the horizon's end)
        "horizon_days": 12,
        "closures": [
            {"start": f"{closure_day}T00:00:00+00:00", "end": f"{closure_day}T23:00:00+00:00", "reason": "training"}
        ],
    }
    assert client.put(f"/v1/practitioners/{pr}/schedule", json=body).status_code == 200
    assert starts(client, ctx, day) == []
    assert starts(client, ctx, far) == []  # past the new horizon
    assert starts(client, ctx, day + dt.timedelta(days=1))


def test_new_visit_type_is_offered_on_existing_schedules(client: Any) -> None:
    ctx = setup_practice(client)
    vt = client.post(
        f"/v1/practices/{ctx['practice_id']}/visit-types", json={"name": "long", "duration_minutes": 120}
    ).json()
    slots = search(client, ctx["practice_id"], vt["id"], next_weekday(1))
    assert [s["start"][11:16] for s in slots] == [
        "08:00",
        "08:15",
        "08:30",
        "08:45",
        "09:00",
        "09:15",
        "09:30",
        "09:45",
        "10:00",
    ]


def next_transition(tz: str, spring: bool) -> str:
    """The next local date, two days from today or later, on which ``tz`` springs forward (or falls back)."""
    zone = ZoneInfo(tz)
    day = dt.date.today() + dt.timedelta(days=2)
    for _ in range(400):
        start = dt.datetime.combine(day, dt.time(), zone).utcoffset()
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).utcoffset()
        assert start is not None and end is not None
        if (end > start) if spring else (end < start):
            return day.isoformat()
        day += dt.timedelta(days=1)
    raise AssertionError(f"no transition of {tz} within 400 days")


@pytest.mark.parametrize(
    ("tz", "spring", "expected"),
    [
        # spring forward: 02:00-03:00 does not exist
        ("Europe/Paris", True, ["00:00+01:00", "01:00+01:00", "03:00+02:00", "04:00+02:00"]),
        ("America/New_York", True, ["00:00-05:00", "01:00-05:00", "03:00-04:00", "04:00-04:00"]),
        # fall back: the repeated hour is offered twice with two offsets
        (
            "Europe/Paris",
            False,
            ["00:00+02:00", "01:00+02:00", "02:00+02:00", "02:00+01:00", "03:00+01:00", "04:00+01:00"],
        ),
        (
            "America/New_York",
            False,
            ["00:00-04:00", "01:00-04:00", "01:00-05:00", "02:00-05:00", "03:00-05:00", "04:00-05:00"],
        ),
    ],
)
def test_search_on_dst_days_gives_right_instants_and_offsets(
    make_client: Any, tz: str, spring: bool, expected: list[str]
) -> None:
    day = next_transition(tz, spring)  # the next one: the test runs any day of any year
    target = dt.date.fromisoformat(day)
    horizon = max(1, min(730, (target - dt.date.today()).days + 2))
    c = make_client()
    ctx = setup_practice(
        c,
        tz=tz,
        durations=(60,),
        weekly=[{"day": d, "start": "00:00", "end": "05:00"} for d in WEEKDAYS],
        slot_step_minutes=60,
        horizon_days=horizon,
    )
    got = [s["start"][11:16] + s["start"][19:] for s in search(c, ctx["practice_id"], ctx["visit_types"][60], target)]
    assert got == expected
    instants = [dt.datetime.fromisoformat(f"{day}T{x[:5]}:00{x[5:]}") for x in got]
    assert all(b - a == dt.timedelta(hours=1) for a, b in zip(instants, instants[1:]))  # elapsed, distinct


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"])
def test_nine_oclock_local_in_winter_and_summer(make_client: Any, tz: str) -> None:
    c = make_client()
    ctx = setup_practice(
        c,
        tz=tz,
        durations=(30,),
        weekly=[{"day": d, "start": "09:00", "end": "10:00"} for d in WEEKDAYS],
        horizon_days=400,
    )
    offsets = set()
    for months in (0, 3, 6, 9):  # a date in each season within the horizon
        day = dt.date.today() + dt.timedelta(days=30 * months + 3)
        slots = search(c, ctx["practice_id"], ctx["visit_types"][30], day)
        assert [s["start"][11:16] for s in slots] == ["09:00", "09:15", "09:30"]
        first = dt.datetime.fromisoformat(slots[0]["start"])
        assert first.astimezone(dt.timezone.utc) == dt.datetime.fromisoformat(f"{day}T09:00:00").replace(
            tzinfo=__import__("zoneinfo").ZoneInfo(tz)
        ).astimezone(dt.timezone.utc)
        offsets.add(slots[0]["start"][19:])
    if tz != "Asia/Kathmandu":
        assert len(offsets) == 2, offsets  # winter and summer offsets differ, the wall clock does not
    else:
        assert offsets == {"+05:45"}


def test_search_spans_days_sorted_by_start_then_practitioner(client: Any) -> None:
    ctx = setup_practice(client, practitioners=3)
    day = next_weekday(0, after_days=3)
    slots = search(client, ctx["practice_id"], ctx["visit_types"][30], day, days=3)
    keys = [(dt.datetime.fromisoformat(s["start"]), s["practitioner_id"]) for s in slots]
    assert keys == sorted(keys)
    assert {s["practitioner_id"] for s in slots} == set(ctx["practitioners"])
    assert {dt.datetime.fromisoformat(s["start"]).date() for s in slots} == {
        day + dt.timedelta(days=i) for i in range(3)
    }
    one = search(client, ctx["practice_id"], ctx["visit_types"][30], day, practitioner_id=ctx["practitioners"][1])
    assert {s["practitioner_id"] for s in one} == {ctx["practitioners"][1]}
    assert len(one) * 3 == len(search(client, ctx["practice_id"], ctx["visit_types"][30], day))
