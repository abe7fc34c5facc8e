"""Searches of one process that reach Redis in the same loop iteration share one round trip
(engine/redis/batching.py): each caller gets its own answer, its own error, and a failed round trip fails all of its
callers and nothing else; on real Redis, concurrent searches answer exactly what each asked alone."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import redis.asyncio as aioredis

from engine.redis.batching import Coalescer
from engine.service import BookingEngine
from engine.settings import Settings
from tests.integration.test_search_cache import Clock, mornings


class Recorder:
    def __init__(self) -> None:
        self.ones: list[Any] = []
        self.manys: list[list[Any]] = []

    async def one(self, item: Any) -> Any:
        self.ones.append(item)
        if item == "bad":
            raise ValueError(item)
        return f"r{item}"

    async def many(self, items: list[Any]) -> list[Any]:
        self.manys.append(list(items))
        if "down" in items:
            raise ConnectionError("gone")
        return [ValueError(i) if i == "bad" else f"r{i}" for i in items]


def test_calls_of_one_iteration_go_in_one_batch_each_with_its_own_result() -> None:
    async def main() -> None:
        rec = Recorder()
        co: Coalescer[Any] = Coalescer(rec.one, rec.many)
        got = await asyncio.gather(*(co(i) for i in range(5)), co("bad"), return_exceptions=True)
        assert got[:5] == [f"r{i}" for i in range(5)]
        assert isinstance(got[5], ValueError) and str(got[5]) == "bad"  # only its caller sees its error
        assert rec.manys == [[0, 1, 2, 3, 4, "bad"]] and rec.ones == []
        assert (co.batches, co.batched) == (1, 6)
        assert await co(7) == "r7" and rec.ones == [7]  # alone: sent alone, no batch
        down = await asyncio.gather(co(1), co("down"), co(2), return_exceptions=True)
        assert all(isinstance(x, ConnectionError) for x in down)  # the round trip failed: every caller of it
        assert await asyncio.gather(co(8), co(9)) == ["r8", "r9"]  # and the next batch is sent as usual

    asyncio.run(main())


def test_a_caller_that_goes_away_while_gathering_leaves_the_others_answered() -> None:
    async def main() -> None:
        rec = Recorder()
        co: Coalescer[Any] = Coalescer(rec.one, rec.many)
        first = asyncio.ensure_future(co(1))
        await asyncio.sleep(0)  # the first caller now gathers
        others = [asyncio.ensure_future(co(i)) for i in (2, 3)]
        first.cancel()
        assert await asyncio.gather(*others) == ["r2", "r3"]
        assert first.cancelled()

    asyncio.run(main())


@pytest.mark.integration
@pytest.mark.parametrize("cache_bytes", [0, 64 * 1024 * 1024])
def test_concurrent_searches_answer_exactly_what_each_asked_alone(redis_db: str, cache_bytes: int) -> None:
    async def main() -> None:
        r = aioredis.Redis.from_url(redis_db)
        await r.flushdb()
        clock = Clock()
        eng = BookingEngine(r, Settings(redis_url=redis_db, search_cache_bytes=cache_bytes), clock)
        try:
            practices = [await mornings(eng, f"Co{i}") for i in range(3)]
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            asks = [(p.id, day + dt.timedelta(days=k % 4), 1 + k % 3, vt) for k, (p, _, vt) in
                    enumerate(practices * 6)]  # fmt: skip
            alone = [(await eng.search_answer(*a)).result for a in asks]
            for _ in range(2):  # computed (each practice's first), then from the cache when it is on
                together = await asyncio.gather(*(eng.search_answer(*a) for a in asks))
                assert [t.result for t in together] == alone
            searcher = eng.searcher
            assert searcher.script_batches.batches + searcher.version_batches.batches >= 1
        finally:
            await r.aclose()

    asyncio.run(main())
