"""api/metrics.py: the availability cache's counters reach the metrics at most once a second from searches, and
exactly at every scrape (a scrape never shows less than the process counted)."""

from __future__ import annotations

import re
from typing import Any

from api import metrics as metrics_module
from api.metrics import Metrics


def counted(text: str) -> dict[str, float]:
    found = re.findall(r'^booking_search_cache_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {k: float(v) for k, v in found}


def test_searches_observe_the_cache_once_a_second_and_a_scrape_always(monkeypatch: Any) -> None:
    clock = [1000.0]
    monkeypatch.setattr(metrics_module.time, "monotonic", lambda: clock[0])
    stats = {"hit": 0, "miss": 0, "evict": 0, "stale": 0, "audit_failed": 0}
    reads = []

    def source() -> tuple[dict[str, int], int]:
        reads.append(dict(stats))
        return dict(stats), 4096

    m = Metrics()
    m.watch_search_cache(source)
    stats["miss"] = 2
    m.search_cache_tick()  # the first search observes at once
    assert len(reads) == 1
    for _ in range(50):  # within the second: the counters are not touched
        stats["hit"] += 2
        m.search_cache_tick()
        clock[0] += 0.01
    assert len(reads) == 1
    clock[0] += 0.6
    m.search_cache_tick()  # a second later: one observation brings everything counted so far
    assert len(reads) == 2
    assert counted(m.render().decode()) == {"hit": 100.0, "miss": 2.0}
    stats["hit"] += 6
    m.search_cache_tick()  # throttled again
    assert counted(m.render().decode())["hit"] == 106.0  # the scrape observes first
    assert re.search(r"^booking_search_cache_bytes 4096", m.render().decode(), re.M)


def test_without_a_watched_cache_nothing_is_observed() -> None:
    m = Metrics()
    m.search_cache_tick()
    assert counted(m.render().decode()) == {}
