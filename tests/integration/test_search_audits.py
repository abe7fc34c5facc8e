"""The audit of searches answered from the availability cache: appended after the answers, in batches (one round
trip a batch), with the instant of the search; a batch Redis does not take is sent again, and what still fails is
counted (``audit_failed`` in /metrics), never dropped silently."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from engine import keys
from engine.service import BookingEngine
from engine.settings import Settings
from tests.integration.test_search_cache import CACHE, Clock, mornings
from tests.support.config import REDIS_URL
from tests.support.http import next_weekday, setup_practice

pytestmark = pytest.mark.integration


async def _searches(r: Any) -> list[dict[str, Any]]:
    out = []
    for key in await r.keys("*:events"):
        for _, f in await r.xrange(key):
            if f[b"type"] == b"search":
                out.append({"at": int(f[b"at"]), **json.loads(f[b"detail"])})
    return out


def test_cached_answers_are_audited_in_one_batch_with_the_instant_of_each_search(redis_db: str) -> None:
    async def main() -> None:
        r = aioredis.Redis.from_url(redis_db)
        await r.flushdb()
        clock = Clock()
        eng = BookingEngine(r, Settings(redis_url=redis_db, search_cache_bytes=CACHE), clock)
        try:
            p, _, vt = await mornings(eng, "Batch")
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            first = await eng.search_answer(p.id, day, 2, vt)  # computed and audited by the script
            assert first.audit_call is None
            counts, ats, calls = [], [], []
            for _ in range(30):
                clock.now += 1
                ans = await eng.search_answer(p.id, day, 2, vt)
                assert ans.audit_call is not None
                calls.append(ans.audit_call)
                counts.append(len(ans.result))
                ats.append(int(clock.now * 1000))
            for call in calls:  # queued with no await between them (the flusher waits 20 ms of real time)
                eng.searcher.audits.add(call)
            clock.now += 100  # the append comes later: the events keep the searches' own instants
            await eng.searcher.audits.close()
            audits = eng.searcher.audits
            assert (audits.appended, audits.failed, audits.batches) == (30, 0, 1)
            found = await _searches(r)
            cached = [e for e in found if e.get("source") == "cache"]
            assert len(found) == 31 and len(cached) == 30
            assert sorted(e["at"] for e in cached) == ats
            assert [e["count"] for e in cached] == counts and counts[0] == len(first.result) > 0
        finally:
            await r.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("failures", [1, 99])
def test_a_batch_redis_does_not_take_is_retried_then_counted(redis_db: str, failures: int) -> None:
    async def main() -> None:
        r = aioredis.Redis.from_url(redis_db)
        await r.flushdb()
        clock = Clock()
        eng = BookingEngine(r, Settings(redis_url=redis_db, search_cache_bytes=CACHE), clock)
        try:
            p, _, vt = await mornings(eng, "Retry")
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            await eng.search_answer(p.id, day, 1, vt)
            run_batch, tries = eng.lua.run_batch, {"n": 0}

            async def flaky(calls: Any) -> Any:
                tries["n"] += 1
                if tries["n"] <= failures:
                    raise RedisConnectionError("Redis went away")
                return await run_batch(calls)

            eng.lua.run_batch = flaky  # type: ignore[method-assign]
            for _ in range(5):
                eng.searcher.audits.add((await eng.search_answer(p.id, day, 1, vt)).audit_call)  # type: ignore[arg-type]
            await eng.searcher.audits.close()
            cached = [e for e in await _searches(r) if e.get("source") == "cache"]
            if failures == 1:  # sent again, and taken
                assert (eng.searcher.audits.appended, eng.searcher.audit_failures, len(cached)) == (5, 0, 5)
            else:  # every try failed: counted, not raised, not silent
                assert (eng.searcher.audits.appended, eng.searcher.audit_failures, len(cached)) == (0, 5, 0)
                assert eng.searcher.cache.stats(eng.searcher.audit_failures)["audit_failed"] == 5
        finally:
            await r.aclose()

    asyncio.run(main())


def test_over_http_a_cached_search_is_still_audited(make_client: Any) -> None:
    client = make_client(search_cache_bytes=CACHE)
    ctx = setup_practice(client, durations=(30,), practitioners=2)
    url = f"/v1/practices/{ctx['practice_id']}/availability"
    params = {"date": next_weekday(2).isoformat(), "visit_type_id": ctx["visit_types"][30], "days": 2}
    first, again = client.get(url, params=params), client.get(url, params=params)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    r = redis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(100):  # the batch goes out about 20 ms after the answer
            events = [f for _, f in r.xrange(keys.events(ctx["practice_id"])) if f[b"type"] == b"search"]
            if len(events) == 2:
                break
            time.sleep(0.05)
        details = [json.loads(f[b"detail"]) for f in events]
        assert len(details) == 2 and details[1]["source"] == "cache"
        assert details[0]["count"] == details[1]["count"] == len(first.json()["slots"]) > 0
    finally:
        r.close()
