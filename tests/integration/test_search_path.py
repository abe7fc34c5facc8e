"""One search path, owned by the engine (issue 20, item 5): the availability route answers through the engine's one
search function with the availability cache on and off (``SEARCH_CACHE_BYTES=0`` is a cache of capacity 0 on that
path), each answer byte for byte what the search script alone answers (``BookingEngine.search``, the reference);
the engine, not the route, queues the audit of an answer it made from its cache; one setting sizes both caches."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from litestar.testing import TestClient

from api import render
from engine.service import BookingEngine
from engine.settings import Settings
from tests.integration.test_search_cache import CACHE, Clock, mornings
from tests.support.http import next_weekday, setup_practice

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("cache_bytes", [0, CACHE], ids=["cache-off", "cache-on"])
def test_every_search_takes_the_one_engine_path_and_answers_as_the_script(
    cache_bytes: int, make_client: Callable[..., TestClient[Any]], redis_url: str
) -> None:
    c = make_client(search_cache_bytes=cache_bytes)
    ctx = setup_practice(c, practitioners=2, slot_step_minutes=15)
    pid, vt = ctx["practice_id"], ctx["visit_types"][30]
    eng = c.app.state.engine
    searcher = eng.searcher
    # one setting sizes both caches: the engine's days and the API's rendered days share SEARCH_CACHE_BYTES
    assert searcher.cache.max_bytes + c.app.state.rendered_days.lru.max_bytes == cache_bytes
    assert eng.rt.reads is c.app.state.pipelined_reads  # the pipelined reads were handed down, not called up

    reached: list[tuple[Any, ...]] = []
    one_path = searcher._answer

    async def counted(*args: Any) -> Any:
        reached.append(args[:5])
        return await one_path(*args)

    searcher._answer = counted  # the one function every search answer is made by
    first = next_weekday(1)
    asks = [(first + dt.timedelta(days=d), days, who) for d in (0, 2) for days in (1, 3) for who in (None, 0)]
    bodies = []
    for day, days, who in asks * 2:  # twice: the second time from the cache when it is on
        params = {"date": day.isoformat(), "visit_type_id": vt, "days": days}
        if who is not None:
            params["practitioner_id"] = ctx["practitioners"][who]
        r = c.get(f"/v1/practices/{pid}/availability", params=params)
        assert r.status_code == 200, r.text
        bodies.append(r.content)
    assert len(reached) == 2 * len(asks)  # every search, cached or not, reached the one path (no roster retry here)

    async def reference() -> list[bytes]:
        r = aioredis.Redis.from_url(redis_url)
        ref = BookingEngine(r, Settings(redis_url=redis_url, search_cache_bytes=0))
        try:
            out = []
            for day, days, who in asks:
                pr = None if who is None else ctx["practitioners"][who]
                practice, found = await ref.search(pid, day, days, vt, pr)  # the script alone
                assert len(found) > 0
                out.append(render.availability_bytes(practice, vt, day, days, found))
            return out
        finally:
            await r.aclose()

    assert bodies == asyncio.run(reference()) * 2
    assert (searcher.cache.hits > 0) == (cache_bytes > 0)


def test_the_engine_queues_the_audit_of_an_answer_from_its_cache(redis_url: str) -> None:
    async def main() -> None:
        r = aioredis.Redis.from_url(redis_url)
        eng = BookingEngine(r, Settings(redis_url=redis_url, search_cache_bytes=CACHE), Clock())
        audits = eng.searcher.audits
        try:
            p, _, vt = await mornings(eng, "Queue")
            day = dt.datetime.fromtimestamp(Clock().now, dt.UTC).date() + dt.timedelta(days=1)
            first = await eng.search_availability(p.id, day, 2, vt)  # computed: the script audited it
            assert first.audit_call is None and audits.pending == []
            again = await eng.search_availability(p.id, day, 2, vt)  # from the cache: the engine queued its audit
            assert again.audit_call is not None and audits.pending == [again.audit_call]
            left = await eng.search_answer(p.id, day, 2, vt)  # the answer alone: its audit is the caller's to queue
            assert left.audit_call is not None and audits.pending == [again.audit_call]
            await eng.close()  # what the engine holds queued is appended
            assert (audits.appended, audits.failed, audits.pending) == (1, 0, [])
        finally:
            await r.aclose()

    asyncio.run(main())
