"""A real Redis stopped in the middle of a search load and started again (its AOF brings its data back): cached days
keep answering, marked stale and unchanged, holds fail fast, and once Redis is back every cached answer equals the
search script's again, also after new changes. Over HTTP: 200 with ``"stale": true`` and an ``Age`` header, 503
with ``Retry-After`` for a hold. No timing asserts: the load only has to be running when Redis goes away."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from litestar.testing import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.app import create_app
from engine.model import Schedule, WeeklyWindow
from engine.service import BookingEngine
from engine.settings import Settings
from tests.support import processes
from tests.support.config import AUTH, settings_for
from tests.support.http import next_weekday, setup_practice

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CACHE = 64 * 1024 * 1024
DOWN = (RedisConnectionError, RedisTimeoutError)


class OwnRedis:
    """A redis-server of this test (AOF in ``folder``), stopped with SIGTERM and started again by process id."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.folder = folder
        self.proc: Any = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = processes.spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.folder)]
        )  # fmt: skip
        r = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        for _ in range(200):
            try:
                if r.ping():
                    break
            except redis.RedisError:
                time.sleep(0.05)
        r.close()

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    srv = OwnRedis(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def test_a_redis_stopped_mid_load_leaves_cached_days_stale_then_exact_again(own_redis: OwnRedis) -> None:
    async def main() -> None:
        def client() -> aioredis.Redis:
            return aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.3, socket_timeout=0.5)

        r1, r2 = client(), client()
        settings = Settings(redis_url=own_redis.url, stale_read_seconds=60, search_cache_bytes=CACHE)
        reader = BookingEngine(r1, settings)
        writer = BookingEngine(r2, Settings(redis_url=own_redis.url))  # another API process, no cache
        try:
            p = await writer.create_practice("Outage", "Europe/Berlin")
            prs = [(await writer.add_practitioner(p.id, f"Dr {i}")).id for i in range(2)]
            vt = (await writer.add_visit_type(p.id, "V", 30)).id
            for pr in prs:
                await writer.put_schedule(pr, Schedule(weekly=[WeeklyWindow(d, "08:00", "12:00") for d in WEEK]))
            today = dt.date.today()
            asks = [(today + dt.timedelta(days=d), n) for d in range(1, 4) for n in (1, 2)]
            before = {a: (await reader.search_answer(p.id, a[0], a[1], vt)).result for a in asks}
            assert all(len(v) > 0 for v in before.values())

            seen: dict[str, int] = {"fresh": 0, "stale": 0, "down": 0, "wrong_stale": 0}
            phase = {"now": "up"}

            async def searching(k: int) -> None:
                while phase["now"] != "done":
                    a = asks[k % len(asks)]
                    k += 1
                    try:
                        ans = await reader.search_answer(p.id, a[0], a[1], vt)
                    except DOWN:
                        seen["down"] += 1
                        continue
                    if ans.stale:
                        seen["stale"] += 1
                        seen["wrong_stale"] += ans.result != before[a]  # the last known availability, unchanged
                    else:
                        seen["fresh"] += 1
                    await asyncio.sleep(0)

            load = [asyncio.create_task(searching(k)) for k in range(6)]
            await asyncio.sleep(0.3)
            fresh_before = seen["fresh"]
            await asyncio.to_thread(own_redis.stop)  # mid-load
            phase["now"] = "down"
            await asyncio.sleep(1.0)
            with pytest.raises(DOWN):  # writes never use the cache: they fail fast
                await writer.hold(prs[0], vt, dt.datetime.fromtimestamp(before[asks[0]].slots()[0].start, dt.UTC))
            stale_during = seen["stale"]
            await asyncio.to_thread(own_redis.start)  # same port, same AOF: the data comes back
            for _ in range(100):  # until the readers see it again
                if seen["fresh"] > fresh_before:
                    break
                await asyncio.sleep(0.05)
            phase["now"] = "back"
            await asyncio.sleep(0.2)
            phase["now"] = "done"
            await asyncio.gather(*load)

            assert fresh_before > 0 and stale_during > 0, seen  # the load ran before and through the outage
            assert seen["wrong_stale"] == 0, seen
            assert seen["down"] == 0, seen  # every asked day was cached: no 503 during the outage

            # back: exact again, also after a change made by another process
            first = before[asks[0]].slots()[0]
            await writer.hold(first.practitioner_id, vt, dt.datetime.fromtimestamp(first.start, dt.UTC))
            for a in asks:
                cached = await reader.search_answer(p.id, a[0], a[1], vt)
                _, direct = await reader.search(p.id, a[0], a[1], vt)
                assert not cached.stale and cached.result == direct, a
            assert first not in (await reader.search_answer(p.id, asks[0][0], asks[0][1], vt)).result.slots()
        finally:
            await r1.aclose()
            await r2.aclose()

    asyncio.run(main())


def test_over_http_a_stale_answer_says_so_and_a_hold_is_503(own_redis: OwnRedis, database_url: str) -> None:
    app = create_app(
        settings_for(own_redis.url, database_url=database_url, search_cache_bytes=CACHE, stale_read_seconds=60),
        background=False,
    )
    with TestClient(app) as c:
        c.headers.update(AUTH)
        ctx = setup_practice(c, practitioners=2)
        url = f"/v1/practices/{ctx['practice_id']}/availability"
        params = {"date": next_weekday(2).isoformat(), "visit_type_id": ctx["visit_types"][30], "days": 2}
        fresh = c.get(url, params=params)
        assert fresh.status_code == 200 and fresh.json()["stale"] is False and "Age" not in fresh.headers
        own_redis.stop()
        stale = c.get(url, params=params)
        assert stale.status_code == 200, stale.text
        assert stale.json()["stale"] is True and int(stale.headers["Age"]) >= 0
        assert stale.json()["slots"] == fresh.json()["slots"]
        slot = fresh.json()["slots"][0]
        held = c.post(
            "/v1/holds",
            json={"practitioner_id": slot["practitioner_id"], "visit_type_id": ctx["visit_types"][30],
                  "start": slot["start"]},
        )  # fmt: skip
        assert held.status_code == 503 and held.json()["code"] == "dependency_unavailable"
        assert "Retry-After" in held.headers
        own_redis.start()
        for _ in range(50):
            back = c.get(url, params=params)
            if back.status_code == 200 and back.json()["stale"] is False:
                break
            time.sleep(0.1)
        assert back.json()["stale"] is False and back.content == fresh.content


def test_a_stale_answer_counts_its_age_from_the_last_read_that_confirmed_it(own_redis: OwnRedis) -> None:
    """A day computed 50 s before and confirmed (versions read, unchanged) just before Redis went away is 20 s old
    20 s later, not 70 s: it still answers stale under STALE_READ_SECONDS=60."""

    async def main() -> None:
        from tests.integration.test_search_cache import Clock, mornings

        r = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.3, socket_timeout=0.5)
        clock = Clock()
        eng = BookingEngine(
            r, Settings(redis_url=own_redis.url, stale_read_seconds=60, search_cache_bytes=CACHE), clock
        )
        try:
            p, _, vt = await mornings(eng, "Age")
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            first = await eng.search_answer(p.id, day, 1, vt)  # computed
            clock.now += 50
            again = await eng.search_answer(p.id, day, 1, vt)  # a hit: confirmed now
            assert again.audit_call is not None and again.result == first.result
            await asyncio.to_thread(own_redis.stop)
            clock.now += 20
            stale = await eng.search_answer(p.id, day, 1, vt)
            assert stale.stale and stale.age_s == 20 and stale.result == first.result
        finally:
            await r.aclose()

    asyncio.run(main())


def test_a_stale_answer_is_cut_as_the_fresh_one(own_redis: OwnRedis) -> None:
    """SEARCH_MAX_SLOTS bounds an answer from the last known availability too: the stale page is the fresh page,
    with the same next page (and a later page, asked with ``from``, is cut the same way)."""

    async def main() -> None:
        from tests.integration.test_search_cache import Clock, mornings

        r = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.3, socket_timeout=0.5)
        clock = Clock()
        settings = Settings(
            redis_url=own_redis.url, stale_read_seconds=60, search_cache_bytes=CACHE, search_max_slots=5
        )
        eng = BookingEngine(r, settings, clock)
        try:
            p, _, vt = await mornings(eng, "Bound")
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            first = await eng.search_answer(p.id, day, 3, vt)  # computed: 3 mornings, cut inside the first
            assert first.next is not None and first.next.from_s is not None and len(first.result) <= 5
            second = await eng.search_answer(p.id, day, 3, vt, from_s=first.next.from_s)
            assert second.next is not None and first.result.packed[-1] < second.result.packed[0]
            await asyncio.to_thread(own_redis.stop)
            stale = await eng.search_answer(p.id, day, 3, vt)
            assert stale.stale and stale.next == first.next and stale.result == first.result
            stale2 = await eng.search_answer(p.id, day, 3, vt, from_s=first.next.from_s)
            assert stale2.stale and stale2.next == second.next and stale2.result == second.result
        finally:
            await r.aclose()

    asyncio.run(main())
