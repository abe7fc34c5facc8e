"""Series (API.md "Buffers, daily limits, ... series"; issue 23 item 4): ``repeat`` on a hold claims every
occurrence or none, in one script (lua/series_hold.lua), each occurrence at the same local wall-clock time across a
DST change; booking the series books every occurrence (lua/series_book.lua); each occurrence then lives on its own;
the series is cancelled from its token; reconciliation after FLUSHALL rebuilds it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis as redis_sync
from litestar.testing import TestClient
from redis import asyncio as aioredis

from api.app import create_app
from engine import errors, keys
from engine.service import BookingEngine
from persistence.db import make_engine
from persistence.persister import Persister
from tests.integration.test_persistence import run_reconcile
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


def as_patient(c: Any, token: str, method: str, url: str, **kw: Any) -> Any:
    """A request with the manage token alone (no staff or admin key)."""
    auth = c.headers.pop("Authorization")
    try:
        return c.request(method, url, headers={"X-Manage-Token": token}, **kw)
    finally:
        c.headers["Authorization"] = auth


def book_series(c: Any, ctx: dict[str, Any], **headers: str) -> dict[str, Any]:
    s = series_hold(c, ctx)
    assert s.status_code == 201, s.text
    r = c.post("/v1/appointments", json={"hold_id": s.json()["id"], "patient": PATIENT}, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/series/{r.json()['series_id']}"
    return r.json()  # type: ignore[no-any-return]


def test_a_booked_series_is_six_appointments_at_0900_local_each_on_its_own(world: dict[str, Any]) -> None:
    c = world["client"]
    ctx = across_dst(c)
    b = book_series(c, ctx)
    token, appts = b["manage_token"], b["appointments"]
    starts = [dt.datetime.fromisoformat(a["start"]) for a in appts]
    assert [t.date() for t in starts] == occurrence_days(ctx)
    assert all(t.strftime("%H:%M") == "09:00" for t in starts) and len({t.utcoffset() for t in starts}) == 2
    assert len({a["id"] for a in appts}) == 6 and all(a["status"] == "booked" for a in appts)
    assert free_at_nine(c, ctx) == [False] * 6
    read = as_patient(c, token, "GET", f"/v1/series/{b['series_id']}")
    assert read.status_code == 200, read.text
    assert [a["id"] for a in read.json()["appointments"]] == [a["id"] for a in appts]
    assert as_patient(c, "not-the-token", "GET", f"/v1/series/{b['series_id']}").status_code == 403
    for a in appts:  # each occurrence reads with the series' token
        assert as_patient(c, token, "GET", f"/v1/appointments/{a['id']}").json()["start"] == a["start"]
    # one occurrence cancelled alone: only its interval is free again
    one = as_patient(c, token, "POST", f"/v1/appointments/{appts[2]['id']}/cancel", json={})
    assert one.status_code == 200 and one.json()["status"] == "cancelled", one.text
    assert free_at_nine(c, ctx) == [False, False, True, False, False, False]
    # the series cancelled from its token: every occurrence still ahead
    done = as_patient(c, token, "POST", f"/v1/series/{b['series_id']}/cancel", json={"reason": "moving away"})
    assert done.status_code == 200, done.text
    assert [a["status"] for a in done.json()["appointments"]] == ["cancelled"] * 6
    assert free_at_nine(c, ctx) == [True] * 6
    again = as_patient(c, token, "POST", f"/v1/series/{b['series_id']}/cancel")
    assert again.status_code == 200 and again.json()["appointments"] == done.json()["appointments"]
    # the series cannot be booked again
    used = c.post("/v1/appointments", json={"hold_id": b["series_id"], "patient": PATIENT})
    assert used.status_code == 404 or used.json()["code"] in ("hold_used", "not_found"), used.text


def test_idempotency_key_replays_a_series_hold_and_its_booking(world: dict[str, Any]) -> None:
    c = world["client"]
    ctx = across_dst(c)
    body = {"practitioner_id": ctx["dr"], "visit_type_id": ctx["vt"], "start": ctx["first"],
            "repeat": {"every_days": 7, "count": 6}}  # fmt: skip
    first = c.post("/v1/holds", json=body, headers={"Idempotency-Key": "series-hold-1"})
    again = c.post("/v1/holds", json=body, headers={"Idempotency-Key": "series-hold-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    book = {"hold_id": first.json()["id"], "patient": PATIENT}
    b1 = c.post("/v1/appointments", json=book, headers={"Idempotency-Key": "series-book-1"})
    b2 = c.post("/v1/appointments", json=book, headers={"Idempotency-Key": "series-book-1"})
    assert b1.status_code == b2.status_code == 201, b2.text
    assert b2.json() == b1.json() and b2.headers["idempotent-replayed"] == "true"
    other = c.post("/v1/holds", json={**body, "repeat": {"every_days": 7, "count": 5}},
                   headers={"Idempotency-Key": "series-hold-1"})  # fmt: skip
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_racing_single_holds_never_leave_a_partial_series_or_an_overlap(world: dict[str, Any]) -> None:
    """200 single holds race one series hold on its occurrences (through the engine, many connections to the real
    Redis): the series holds all six or none, and no two live claims of the practitioner overlap."""
    c = world["client"]
    ctx = across_dst(c)
    zone = ZoneInfo(TZ)
    outcomes = []
    for hour, position in ((8, 0), (9, 3), (10, 100), (11, 200)):
        firsts = [dt.datetime.combine(d, dt.time(hour), zone) for d in occurrence_days(ctx)]
        outcomes.append(asyncio.run(_race(world["redis_url"], ctx, firsts, position)))
    r = world["redis"]
    pid, dr = ctx["practice_id"], ctx["dr"]
    members = r.zrange(keys.claims(pid, dr), 0, -1, withscores=True)
    spans = sorted((int(score), int(m.decode().split("|")[2])) for m, score in members)
    assert len(spans) == 24  # every occurrence of every round is held, once
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    for series_id, held, won, unavailable in outcomes:
        in_series = [m for m, _ in members if r.hget(keys.hold(pid, m.decode().split("|")[1]), "series_id")
                     == series_id.encode()]  # fmt: skip
        if held:
            assert len(in_series) == 6 and won == 0
        else:
            assert in_series == [] and r.exists(keys.series(pid, series_id)) == 0
            assert won == 6 and 1 <= len(unavailable) <= 6
    # which side wins a round depends on timing (the series' position only biases it): each outcome is checked
    # above whichever it was; the last round's series comes after every single hold, so singles won there
    assert outcomes[-1][1] is False


async def _race(
    redis_url: str, ctx: dict[str, Any], firsts: list[dt.datetime], position: int
) -> tuple[str, bool, int, list[str]]:
    r = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32))
    eng = BookingEngine(r, settings_for(redis_url))
    series_id = ""
    try:
        await eng.catalog.search_context(ctx["practice_id"], ctx["vt"], ctx["dr"])  # warm: no head start for singles

        async def single(i: int) -> bool:
            try:
                await eng.hold(ctx["dr"], ctx["vt"], firsts[i % 6])
                return True
            except errors.SlotUnavailableError:
                return False

        async def series() -> list[str]:
            nonlocal series_id
            try:
                s, _ = await eng.hold_series(ctx["dr"], ctx["vt"], firsts[0], 7, 6)
                series_id = s.id
                return []
            except errors.SeriesUnavailableError as exc:
                return exc.unavailable

        calls: list[Any] = [single(i) for i in range(200)]
        calls.insert(position, series())
        results = await asyncio.gather(*calls)
        unavailable = results.pop(position)
        won = sum(1 for x in results if x)
        return series_id or "-", series_id != "", won, unavailable
    finally:
        await r.aclose()
        await r.connection_pool.disconnect()


def test_reconcile_after_flushall_rebuilds_the_series_exactly(world: dict[str, Any]) -> None:
    c, r, p, db = world["client"], world["redis"], world["persister"], world["db"]
    ctx = across_dst(c)
    b = book_series(c, ctx)
    sid, token, appts = b["series_id"], b["manage_token"], b["appointments"]
    assert as_patient(c, token, "POST", f"/v1/appointments/{appts[1]['id']}/cancel", json={}).status_code == 200
    days = occurrence_days(ctx)

    def searches() -> list[Any]:
        return [search(c, ctx["practice_id"], ctx["vt"], d) for d in days]

    before = (r.hgetall(keys.series(ctx["practice_id"], sid)), c.get(f"/v1/series/{sid}").json(), searches())
    assert before[0][b"state"] == b"booked" and len(before[1]["appointments"]) == 6
    p.drain()
    with db.connect() as conn:
        booked = conn.exec_driver_sql(
            "select detail from audit_events where action = 'book' and appointment_id = %(a)s", {"a": appts[0]["id"]}
        ).scalar_one()
    assert f'"series_id":"{sid}"' in booked  # the audit trail names the series
    r.flushdb()
    said: list[str] = []
    asyncio.run(run_reconcile(world["redis_url"], db, said))
    assert f"restored in Redis: series {sid}" in said, said
    after = (r.hgetall(keys.series(ctx["practice_id"], sid)), c.get(f"/v1/series/{sid}").json(), searches())
    assert after == before
    # the series still works from its token after the loss
    done = as_patient(c, token, "POST", f"/v1/series/{sid}/cancel", json={})
    assert done.status_code == 200 and [a["status"] for a in done.json()["appointments"]] == ["cancelled"] * 6
    assert free_at_nine(c, ctx) == [True] * 6


def test_an_expiring_series_hold_frees_every_occurrence(make_client: Any) -> None:
    c = make_client(hold_ttl_seconds=1)
    ctx = across_dst(c)
    s = series_hold(c, ctx).json()
    assert free_at_nine(c, ctx) == [False] * 6
    time.sleep(1.2)  # no sweeper needed: every reader compares expires_ms with now
    assert free_at_nine(c, ctx) == [True] * 6
    late = c.post("/v1/appointments", json={"hold_id": s["id"], "patient": PATIENT})
    assert late.status_code == 410 and late.json()["code"] == "hold_expired", late.text
    assert c.get(f"/v1/holds/{s['id']}").status_code == 410


def test_a_cancelled_occurrence_is_offered_to_the_waitlist(world: dict[str, Any]) -> None:
    c = world["client"]
    ctx = across_dst(c)
    b = book_series(c, ctx)
    day = occurrence_days(ctx)[4]
    body = {"visit_type_id": ctx["vt"], "from_date": day.isoformat(), "to_date": day.isoformat(),
            "from_time": "09:00", "to_time": "09:30", "patient": {"name": "W", "email": "w@example.org"}}  # fmt: skip
    entry = c.post(f"/v1/practices/{ctx['practice_id']}/waitlist", json=body)
    assert entry.status_code == 201 and entry.json()["status"] == "waiting", entry.text
    gone = as_patient(c, b["manage_token"], "POST", f"/v1/appointments/{b['appointments'][4]['id']}/cancel", json={})
    assert gone.status_code == 200, gone.text
    e = c.get(f"/v1/waitlist/{entry.json()['id']}").json()
    assert e["status"] == "offered" and e["offer"]["start"] == b["appointments"][4]["start"], e
