"""Reconciliation after Redis lost everything rebuilds what issue 23 added, from PostgreSQL alone: the visit
types' buffers and daily limits, each appointment's occupation (buffers included) and its place in the daily
count, the practice's and the patient's language; a search after it is identical."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from persistence.db import make_engine
from persistence.persister import Persister
from tests.integration.test_persistence import run_reconcile
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Iterator[dict[str, Any]]:
    r = redis_sync.Redis.from_url(redis_db)  # a Redis database of this module's own (leased: tests/conftest.py)
    url = fresh_database("booking_practice_rules")
    db = make_engine(url)
    with TestClient(create_app(settings_for(redis_db, database_url=url))) as c:
        c.headers.update(AUTH)
        yield {"client": c, "redis": r, "db": db, "persister": Persister(r, db, consumer="t1"), "redis_url": redis_db}
    db.dispose()
    r.close()


def hold(c: Any, pr: str, vt: str, start: str) -> Any:
    return c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})


def test_flushall_then_reconcile_rebuilds_buffers_counts_and_languages(world: dict[str, Any]) -> None:
    c, r, p = world["client"], world["redis"], world["persister"]
    ctx = setup_practice(c, durations=(15,), slot_step_minutes=5)
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
    body = {"name": "surgery", "duration_minutes": 30, "buffer_after_minutes": 10, "max_per_day": 2}
    surgery = c.post(f"/v1/practices/{pid}/visit-types", json=body).json()["id"]
    day = next_weekday(2)
    free = {s["start"][11:16]: s["start"] for s in search(c, pid, surgery, day)}
    booked = []
    for local, language in (("09:00", "fr"), ("10:30", None)):
        h = hold(c, dr, surgery, free[local]).json()
        patient = {"name": "R", "email": "r@example.org", **({"language": language} if language else {})}
        a = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": patient})
        assert a.status_code == 201, a.text
        booked.append(a.json())
    plain_free = {s["start"][11:16]: s["start"] for s in search(c, pid, plain, day)}
    assert "09:30" not in plain_free and "09:40" in plain_free  # the buffer, before the flush
    before = (search(c, pid, plain, day, days=3), search(c, pid, surgery, day, days=3))
    assert search(c, pid, surgery, day) == []  # the daily limit is reached
    p.drain()
    r.flushdb()
    said: list[str] = []
    asyncio.run(run_reconcile(world["redis_url"], world["db"], said))
    assert c.get("/readyz").status_code == 200
    assert (search(c, pid, plain, day, days=3), search(c, pid, surgery, day, days=3)) == before
    inside = dt.datetime.fromisoformat(plain_free["09:40"]) - dt.timedelta(minutes=5)
    assert hold(c, dr, plain, inside.isoformat()).status_code == 409  # 09:35: inside the restored buffer
    other = next(s["start"] for s in search(c, pid, plain, day) if s["start"][11:16] == "11:30")
    assert hold(c, dr, surgery, other).status_code == 409  # the restored count still says 2
    vt = next(v for v in c.get(f"/v1/practices/{pid}/visit-types").json()["items"] if v["id"] == surgery)
    assert (vt["buffer_after_minutes"], vt["max_per_day"]) == (10, 2)
    assert c.get(f"/v1/appointments/{booked[0]['id']}").json()["patient"]["language"] == "fr"
    assert "language" not in c.get(f"/v1/appointments/{booked[1]['id']}").json()["patient"]


def test_flushall_then_reconcile_rebuilds_room_claims_and_closures(world: dict[str, Any]) -> None:
    c, r, p = world["client"], world["redis"], world["persister"]
    ctx = setup_practice(c, durations=(30,), practitioners=2, slot_step_minutes=15)
    pid, (a, b) = ctx["practice_id"], ctx["practitioners"]
    room = c.post(f"/v1/practices/{pid}/resources", json={"name": "Ultrasound", "kind": "room"}).json()["id"]
    scan = c.post(f"/v1/practices/{pid}/visit-types",
                  json={"name": "scan", "duration_minutes": 30, "resource_ids": [room]}).json()["id"]  # fmt: skip
    day = next_weekday(2)
    free = {s["start"][11:16]: s["start"] for s in search(c, pid, scan, day) if s["practitioner_id"] == a}
    h = hold(c, a, scan, free["09:00"]).json()
    appt = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": {"name": "R", "email": "r@example.org"}})
    assert appt.status_code == 201, appt.text
    t0 = dt.datetime.fromisoformat(free["10:00"])
    closure = {"start": t0.isoformat(), "end": (t0 + dt.timedelta(hours=1)).isoformat(), "reason": "repairs"}
    assert c.put(f"/v1/resources/{room}/closures", json=[closure]).status_code == 200
    before = search(c, pid, scan, day, days=3)
    assert free["09:00"] not in [s["start"] for s in before if s["practitioner_id"] == b]
    p.drain()
    r.flushdb()
    said: list[str] = []
    asyncio.run(run_reconcile(world["redis_url"], world["db"], said))
    assert search(c, pid, scan, day, days=3) == before  # room claims and closures rebuilt: identical
    assert hold(c, b, scan, free["09:00"]).status_code == 409  # the room is the appointment's again
    assert hold(c, b, scan, free["10:00"]).status_code == 409  # closed
    assert c.get(f"/v1/practices/{pid}/resources").json()["items"][0]["id"] == room
    assert any(room in line for line in said)
