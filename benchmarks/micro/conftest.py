"""Fixtures of the micro-benchmarks (pytest-benchmark). Collected only when asked (``pytest benchmarks/micro``):
the default ``pytest`` and ``pytest tests`` never see them.

Redis: ``BENCH_REDIS_URL`` if set (a database nobody else uses: it is flushed), else a Redis-protocol server of
their own, started and stopped here (api/embedded.py, no AOF), as ``booking bench`` does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.micro import inprocess


@pytest.fixture(scope="session")
def bench_redis_url() -> Iterator[str]:
    given = os.environ.get("BENCH_REDIS_URL")
    if given:
        yield given
        return
    from api.embedded import EmbeddedRedis

    folder = tempfile.mkdtemp(prefix="booking-micro-redis-")
    own = EmbeddedRedis(folder, durable=False)
    try:
        yield own.start()
    finally:
        own.stop()
        shutil.rmtree(folder, ignore_errors=True)


class InProcessApi:
    """The API as an ASGI app (availability cache on) on one event loop, one practice seeded: ``run(name)`` does one
    operation of benchmarks/micro/inprocess.py (``search``, ``hold``, ``hold-public``) and counts its CPU."""

    def __init__(self, redis_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.r = inprocess.sync_redis(redis_url)
        self.r.flushdb()
        self.app = inprocess.make_app(redis_url, inprocess.CACHE_BYTES)
        started, self.stop = asyncio.Event(), asyncio.Event()

        async def lifespan() -> None:  # entered and left in one task (anyio's cancel scopes require it)
            async with self.app.lifespan():
                started.set()
                await self.stop.wait()

        self.lifespan = self.loop.create_task(lifespan())
        self.loop.run_until_complete(started.wait())
        practice = self.loop.run_until_complete(inprocess.seed(self.app, 1, 4))[0]
        first = dt.date.today() + dt.timedelta(days=3)
        starts = self.loop.run_until_complete(inprocess.offered(self.app, practice, first, 14))
        self.ops = inprocess.Ops(self.app, practice, starts)
        self.practice = practice
        self.cpu: dict[str, list[float]] = {}

    def run(self, name: str) -> None:
        t = time.process_time()
        self.loop.run_until_complete(self.ops.get(name)())
        cpu = self.cpu.setdefault(name, [0.0, 0])
        cpu[0] += time.process_time() - t
        cpu[1] += 1

    def settle(self) -> None:
        self.loop.run_until_complete(self.ops.settle())

    def cpu_us(self, name: str) -> float:
        total, n = self.cpu[name]
        return round(total / n * 1e6, 1)

    def close(self) -> None:
        self.stop.set()
        self.loop.run_until_complete(self.lifespan)
        self.loop.close()
        self.r.flushdb()
        self.r.close()


@pytest.fixture(scope="session")
def api(bench_redis_url: str) -> Iterator[InProcessApi]:
    a = InProcessApi(bench_redis_url)
    try:
        yield a
    finally:
        a.close()


def record(benchmark: Any, api: InProcessApi, name: str) -> None:
    """The API's CPU per operation (``time.process_time``) beside pytest-benchmark's wall-clock figures."""
    benchmark.extra_info["api_cpu_us_per_op"] = api.cpu_us(name)
