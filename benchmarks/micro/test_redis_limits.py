"""The limit under the HTTP stack: one Lua script by EVALSHA, one call at a time on one connection, with KEYS/ARGV
built by the engine's script layer (benchmarks/redis_limits.py's ScriptBench) on a practice seeded in process.

    .venv/bin/python -m pytest benchmarks/micro/test_redis_limits.py

``extra_info.redis_usec_per_call`` is Redis's own time per call (INFO commandstats, evalsha).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from benchmarks.dataset import Dataset, PracticeData
from benchmarks.micro.conftest import InProcessApi
from benchmarks.redis_limits import ScriptBench, _evalsha_stats


@pytest.fixture(scope="module")
def scripts(api: InProcessApi, bench_redis_url: str) -> Iterator[ScriptBench]:
    p = api.practice
    data = Dataset(
        practices=[
            PracticeData(
                id=p["id"],
                timezone="Europe/Paris",
                practitioners=p["practitioners"],
                visit_types=list(zip(p["visit_types"], (30, 45))),
            )
        ],
        first_date=(dt.date.today() + dt.timedelta(days=1)).isoformat(),
        search_days=20,
        hot=None,
    )
    b = ScriptBench(bench_redis_url, data, log=lambda _line: None)
    yield b
    b.close()


def _evalsha(b: ScriptBench, name: str, call: Any) -> Any:
    return b.r.evalsha(b.sha[name], len(call.keys), *call.keys, *call.args)


def _redis_usec(benchmark: Any, b: ScriptBench, before: tuple[int, int]) -> None:
    calls, usec = _evalsha_stats(b.r)
    benchmark.extra_info["redis_usec_per_call"] = round((usec - before[1]) / max(1, calls - before[0]), 1)


def test_search_script_1_day(benchmark: Any, scripts: ScriptBench) -> None:
    calls = [scripts.search_call(i, 1) for i in range(20)]
    it = iter(range(10**9))
    before = _evalsha_stats(scripts.r)
    benchmark.pedantic(lambda: _evalsha(scripts, "search", calls[next(it) % 20]), rounds=1000, iterations=1)
    _redis_usec(benchmark, scripts, before)


def test_hold_then_release_scripts(benchmark: Any, scripts: ScriptBench) -> None:
    slots = scripts._slots(200)
    assert slots, "the seeded practice offers no start"
    it = iter(range(10**9))

    def hold_release() -> None:
        hid, call = scripts.hold_call(*slots[next(it) % len(slots)])
        status = _evalsha(scripts, "hold", call)
        assert status[0] in (b"OK", "OK"), status
        _evalsha(scripts, "release", scripts.release_call(hid))

    before = _evalsha_stats(scripts.r)
    benchmark.pedantic(hold_release, rounds=500, iterations=1)
    _redis_usec(benchmark, scripts, before)
