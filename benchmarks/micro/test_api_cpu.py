"""API CPU per cached search and per hold, in process (issue 20: "no higher than today"), on pytest-benchmark.

    .venv/bin/python -m pytest benchmarks/micro [--benchmark-save=NAME] [--benchmark-compare]

pytest-benchmark's columns are wall-clock time per operation (the app's CPU plus its Redis round trips; one event
loop turn each); ``extra_info.api_cpu_us_per_op`` is the API's own CPU. For before/after figures across checkouts
use ``python -m benchmarks.micro.compare`` (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

from benchmarks.micro.conftest import InProcessApi, record


def _bench(benchmark: Any, api: InProcessApi, name: str) -> None:
    for _ in range(100):  # warm: the cache's first reads, scripts loaded, per-slot fragments
        api.run(name)
    api.settle()
    api.cpu.pop(name, None)
    benchmark.pedantic(api.run, args=(name,), rounds=500, iterations=1, warmup_rounds=0)
    api.settle()
    record(benchmark, api, name)


def test_cached_search(benchmark: Any, api: InProcessApi) -> None:
    """One 1-day search of one practice asked again and again, the availability cache on (every search a hit)."""
    _bench(benchmark, api, "search")


def test_hold_and_release_admin(benchmark: Any, api: InProcessApi) -> None:
    """POST /v1/holds then DELETE /v1/holds/{id} with the admin token (no abuse limits)."""
    _bench(benchmark, api, "hold")


def test_hold_and_release_public_client(benchmark: Any, api: InProcessApi) -> None:
    """The same as a public client: the abuse limits are counted (set high enough never to refuse)."""
    _bench(benchmark, api, "hold-public")
