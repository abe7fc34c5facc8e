"""Series (API.md "Buffers, daily limits, ... series"; issue 23 item 4): ``repeat`` on a hold claims every
occurrence or none, in one script (lua/series_hold.lua), each occurrence at the same local wall-clock time across a
DST change; booking the series books every occurrence (lua/series_book.lua); each occurrence then lives on its own;
the series is cancelled from its token; reconciliation after FLUSHALL rebuilds it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from persistence.db import make_engine
from persistence.persister import Persister
from tests.integration.test_schedule_and_tz import next_transition
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import search, setup_practice

pytestmark = pytest.mark.integration

TZ = "Europe/Paris"
PATIENT = {"name": "S", "email": "s@example.org"}


@pytest.fixture
def world(redis_db: str) -> Iterator[dict[str, Any]]:
    r = redis_sync.Redis.from_url(redis_db)  # a Redis database of this module's own (leased: tests/conftest.py)
    url = fresh_database("booking_practice_series")
    db = make_engine(url)
    with TestClient(create_app(settings_for(redis_db, database_url=url))) as c:
        c.headers.update(AUTH)
        yield {"client": c, "redis": r, "db": db, "persister": Persister(r, db, consumer="t1"), "redis_url": redis_db}
    db.dispose()
    r.close()


def across_dst(c: Any, weeks_before: int = 3) -> dict[str, Any]:
    """A Paris practice open 08:00-12:00 on weekdays whose horizon covers a series of 6 weekly Mondays at 09:00
    local, the first ``weeks_before`` weeks before the next DST change (so 3 before it and 3 after)."""
    change = dt.date.fromisoformat(next_transition(TZ, spring=True))
    alt = dt.date.fromisoformat(next_transition(TZ, spring=False))
    change = min(change, alt)  # whichever comes first: last Sunday of March or of October
    monday = change - dt.timedelta(days=change.weekday()) - dt.timedelta(weeks=weeks_before - 1)
    while monday <= dt.date.today() + dt.timedelta(days=2):  # too close to today: the change after
        monday += dt.timedelta(weeks=1)
    horizon = (monday - dt.date.today()).days + 7 * 7
    ctx = setup_practice(c, tz=TZ, durations=(30,), horizon_days=horizon)
    ctx["vt"], ctx["dr"] = ctx["visit_types"][30], ctx["practitioners"][0]
    ctx["monday"] = monday
    ctx["first"] = dt.datetime.combine(monday, dt.time(9), ZoneInfo(TZ)).isoformat()
    return ctx


def series_hold(c: Any, ctx: dict[str, Any], start: str | None = None, **repeat: Any) -> Any:
    body = {"practitioner_id": ctx["dr"], "visit_type_id": ctx["vt"], "start": start or ctx["first"],
            "repeat": repeat or {"every_days": 7, "count": 6}}  # fmt: skip
    return c.post("/v1/holds", json=body)


def single_hold(c: Any, ctx: dict[str, Any], start: str) -> Any:
    return c.post("/v1/holds", json={"practitioner_id": ctx["dr"], "visit_type_id": ctx["vt"], "start": start})


def occurrence_days(ctx: dict[str, Any], n: int = 6) -> list[dt.date]:
    return [ctx["monday"] + dt.timedelta(weeks=i) for i in range(n)]


def free_at_nine(c: Any, ctx: dict[str, Any]) -> list[bool]:
    return [any(s["start"][11:16] == "09:00" for s in search(c, ctx["practice_id"], ctx["vt"], d))
            for d in occurrence_days(ctx)]  # fmt: skip


def test_a_series_across_a_dst_change_is_held_whole_at_0900_local(world: dict[str, Any]) -> None:
    c = world["client"]
    ctx = across_dst(c)
    r = series_hold(c, ctx)
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["series"] is True and r.headers["location"] == f"/v1/holds/{s['id']}"
    starts = [dt.datetime.fromisoformat(h["start"]) for h in s["holds"]]
    assert len(starts) == 6 and all(t.strftime("%H:%M") == "09:00" for t in starts)
    assert [t.date() for t in starts] == occurrence_days(ctx)
    offsets = {t.utcoffset() for t in starts}
    assert len(offsets) == 2  # the series really spans the change: two UTC offsets, one wall-clock time
    assert all(h["expires_at"] == s["expires_at"] for h in s["holds"])
    assert free_at_nine(c, ctx) == [False] * 6
    assert c.get(f"/v1/holds/{s['id']}").json()["holds"] == s["holds"]
    for h in s["holds"]:  # each occurrence is a hold of its own, booked only with its series
        assert c.get(f"/v1/holds/{h['id']}").status_code == 200
        alone = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": PATIENT})
        assert alone.status_code == 409 and alone.json()["code"] == "slot_unavailable", alone.text


def test_one_occurrence_taken_refuses_the_whole_series(world: dict[str, Any]) -> None:
    c = world["client"]
    ctx = across_dst(c)
    fourth = dt.datetime.combine(occurrence_days(ctx)[3], dt.time(9), ZoneInfo(TZ)).isoformat()
    taken = single_hold(c, ctx, fourth)
    assert taken.status_code == 201, taken.text
    r = series_hold(c, ctx)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "slot_unavailable"
    assert r.json()["unavailable"] == [taken.json()["start"]]
    assert free_at_nine(c, ctx) == [True, True, True, False, True, True]  # none of the others was held
    assert c.delete(f"/v1/holds/{taken.json()['id']}").status_code == 204
    assert series_hold(c, ctx).status_code == 201


def test_release_frees_every_occurrence(world: dict[str, Any]) -> None:
    c = world["client"]
    ctx = across_dst(c)
    s = series_hold(c, ctx).json()
    assert free_at_nine(c, ctx) == [False] * 6
    assert c.delete(f"/v1/holds/{s['id']}").status_code == 204
    assert free_at_nine(c, ctx) == [True] * 6
    assert c.get(f"/v1/holds/{s['id']}").status_code == 410
    gone = c.post("/v1/appointments", json={"hold_id": s["id"], "patient": PATIENT})
    assert gone.status_code == 410, gone.text


@pytest.mark.parametrize(
    ("repeat", "field"),
    [({"every_days": 7, "count": 1}, "count"), ({"every_days": 7, "count": 13}, "count"),
     ({"every_days": 0, "count": 6}, "every_days"), ({"every_days": 29, "count": 6}, "every_days"),
     ({"every_days": 7}, "count"), ({"every_days": 7, "count": 6, "until": "x"}, "until"),
     ({"every_days": "7", "count": 6}, "every_days")],
)  # fmt: skip
def test_a_bad_repeat_is_422_and_holds_nothing(world: dict[str, Any], repeat: dict[str, Any], field: str) -> None:
    c = world["client"]
    ctx = across_dst(c)
    r = series_hold(c, ctx, **repeat)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error" and field in r.json()["detail"], r.text
    assert free_at_nine(c, ctx) == [True] * 6
