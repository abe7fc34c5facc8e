"""Conditional searches (issue 21 item 3, API.md "Conditional searches"): each 200 carries an ETag made of the
versions and the validity instant the answer was computed from and ``Cache-Control: private, max-age=0,
must-revalidate``; ``If-None-Match`` with the current tag answers 304 with no body (and, with the cache on, no
script runs: counted in Redis's INFO commandstats); a hold, its expiry and the notice passing a slot each change
the tag; a stale answer carries none. With the cache on and off (SEARCH_CACHE_BYTES=0)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from tests.support.clock import Clock
from tests.support.config import AUTH, WEEKDAYS, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, setup_practice
from tests.support.processes import Procs
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration]
CACHE = 64 * 1024 * 1024
CACHE_CONTROL = "private, max-age=0, must-revalidate"
TTL = 120


def _scripts_run(r: redis_sync.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval", "fcall"))


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server of this module's own: INFO commandstats counts the whole server's calls, and the other
    xdist worker's tests run scripts on the shared test Redis meanwhile."""
    base = tmp_path_factory.mktemp("conditional")
    procs = Procs(base)
    try:
        rs = RedisServer(procs, base / "redis", aof=False)
        rs.start()
        yield rs.url
    finally:
        procs.close()


@pytest.fixture(params=[CACHE, 0], ids=["cache", "no-cache"])
def world(
    request: pytest.FixtureRequest, make_client: Callable[..., TestClient[Any]], own_redis: str
) -> Iterator[dict[str, Any]]:
    """A practice open all day every day with a 60-minute notice, on an app whose clock the test moves."""
    c = make_client(redis_url=own_redis, search_cache_bytes=request.param, hold_ttl_seconds=TTL, audit_searches=False)
    clock = Clock(dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0).timestamp() + 60)
    c.app.state.engine.rt.clock = clock
    every_day = [{"day": d, "start": "00:00", "end": "24:00"} for d in WEEKDAYS]
    ctx = setup_practice(c, tz="UTC", weekly=every_day, min_notice_minutes=60, slot_step_minutes=30)
    day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
    yield {"client": c, "clock": clock, "ctx": ctx, "day": day, "cache": request.param > 0}


def _get(w: dict[str, Any], tag: str | None = None, day: dt.date | None = None) -> Any:
    ctx = w["ctx"]
    params = {"date": (day or w["day"]).isoformat(), "visit_type_id": ctx["visit_types"][30], "days": 2}
    headers = {"If-None-Match": tag} if tag is not None else {}
    return w["client"].get(f"/v1/practices/{ctx['practice_id']}/availability", params=params, headers=headers)


def test_a_repeated_search_answers_304_without_running_a_script(world: dict[str, Any], own_redis: str) -> None:
    first = _get(world)
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) > 2
    assert first.headers["cache-control"] == CACHE_CONTROL
    r = redis_sync.Redis.from_url(own_redis)
    before = _scripts_run(r)
    for _ in range(100):
        again = _get(world, tag)
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == tag and again.headers["cache-control"] == CACHE_CONTROL
    if world["cache"]:  # exactly as the cache is exact: nothing moved, so nothing was computed
        assert _scripts_run(r) == before
    assert _get(world, f'W/{tag}, "other"').status_code == 304  # a list, and the weak form, match too
    assert _get(world, '"other"').status_code == 200
    unconditional = _get(world)
    assert unconditional.status_code == 200 and unconditional.headers["etag"] == tag
    assert unconditional.content == first.content
    r.close()


def test_a_hold_then_its_expiry_change_the_tag(world: dict[str, Any]) -> None:
    c, ctx = world["client"], world["ctx"]
    first = _get(world)
    tag = first.headers["etag"]
    slot = first.json()["slots"][5]
    hold = c.post("/v1/holds", json={"practitioner_id": slot["practitioner_id"], "visit_type_id": ctx["visit_types"][30],
                                     "start": slot["start"]})  # fmt: skip
    assert hold.status_code == 201, hold.text
    held = _get(world, tag)
    assert held.status_code == 200, "a hold on an asked day must change the tag"
    held_tag = held.headers["etag"]
    assert held_tag != tag and slot not in held.json()["slots"]
    assert _get(world, held_tag).status_code == 304
    world["clock"].now += TTL + 1  # the hold expires: time alone changes the answer (no sweeper runs here)
    expired = _get(world, held_tag)
    assert expired.status_code == 200, "a hold's expiry must change the tag"
    assert expired.headers["etag"] != held_tag and slot in expired.json()["slots"]
    assert _get(world, expired.headers["etag"]).status_code == 304


def test_the_notice_passing_a_slot_changes_the_tag(world: dict[str, Any]) -> None:
    today = dt.datetime.fromtimestamp(world["clock"].now, dt.UTC).date()
    first = _get(world, day=today)
    tag = first.headers["etag"]
    assert _get(world, tag, day=today).status_code == 304
    world["clock"].now += 1800  # half an hour later: the first slot now starts within the 60-minute notice
    later = _get(world, tag, day=today)
    assert later.status_code == 200, "the notice passing a slot must change the tag"
    assert later.headers["etag"] != tag and len(later.json()["slots"]) < len(first.json()["slots"])


def test_a_change_elsewhere_keeps_the_tag(world: dict[str, Any]) -> None:
    """A hold on a day not asked leaves the answer, and its tag, as they were."""
    c, ctx = world["client"], world["ctx"]
    tag = _get(world).headers["etag"]
    far = _get(world, day=world["day"] + dt.timedelta(days=7)).json()["slots"][3]
    hold = c.post("/v1/holds", json={"practitioner_id": far["practitioner_id"], "visit_type_id": ctx["visit_types"][30],
                                     "start": far["start"]})  # fmt: skip
    assert hold.status_code == 201, hold.text
    assert _get(world, tag).status_code == 304


def test_a_stale_answer_carries_no_etag(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    try:
        rs = RedisServer(procs, tmp_path / "redis", aof=False)
        rs.start()
        db = fresh_database("booking_conditional")
        app = create_app(settings_for(rs.url, database_url=db, search_cache_bytes=CACHE, stale_read_seconds=60),
                         background=False)  # fmt: skip
        with TestClient(app) as c:
            c.headers.update(AUTH)
            ctx = setup_practice(c)
            params = {"date": next_weekday(2).isoformat(), "visit_type_id": ctx["visit_types"][30]}
            url = f"/v1/practices/{ctx['practice_id']}/availability"
            fresh = c.get(url, params=params)
            assert fresh.status_code == 200 and "etag" in fresh.headers
            rs.kill9()
            stale = c.get(url, params=params, headers={"If-None-Match": fresh.headers["etag"]})
            assert stale.status_code == 200 and stale.json()["stale"] is True  # not 304: it cannot be revalidated
            assert "etag" not in stale.headers and "age" in stale.headers
    finally:
        procs.close()


def test_a_cancellation_changes_the_tag(world: dict[str, Any]) -> None:
    """A change that leaves the answer's validity instant as it was (the cancelled slot is not the first one)
    changes the tag through the versions alone."""
    c, ctx = world["client"], world["ctx"]
    slot = _get(world).json()["slots"][5]
    hold = c.post("/v1/holds", json={"practitioner_id": slot["practitioner_id"], "visit_type_id": ctx["visit_types"][30],
                                     "start": slot["start"]})  # fmt: skip
    booked = c.post("/v1/appointments", json={"hold_id": hold.json()["id"],
                                              "patient": {"name": "Ada", "email": "ada@example.org"}})  # fmt: skip
    assert booked.status_code == 201, booked.text
    tag = _get(world).headers["etag"]
    assert _get(world, tag).status_code == 304
    assert c.post(f"/v1/appointments/{booked.json()['id']}/cancel", json={}).status_code == 200
    after = _get(world, tag)
    assert after.status_code == 200, "a cancellation on an asked day must change the tag"
    assert after.headers["etag"] != tag and slot in after.json()["slots"]


@pytest.mark.parametrize("cache", [CACHE, 0], ids=["cache", "no-cache"])
def test_a_practice_without_practitioners_answers_an_empty_search(
    cache: int, make_client: Callable[..., TestClient[Any]]
) -> None:
    """Was a 500 with the cache on (an IndexError on the empty practitioner list), found by schemathesis."""
    c = make_client(search_cache_bytes=cache)
    pid = c.post("/v1/practices", json={"name": "Empty", "timezone": "UTC"}).json()["id"]
    vt = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "V", "duration_minutes": 30}).json()["id"]
    params = {"date": next_weekday(2).isoformat(), "visit_type_id": vt, "days": 5}
    r = c.get(f"/v1/practices/{pid}/availability", params=params)
    assert r.status_code == 200, r.text
    assert r.json()["slots"] == [] and "etag" in r.headers
    again = c.get(f"/v1/practices/{pid}/availability", params=params, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
