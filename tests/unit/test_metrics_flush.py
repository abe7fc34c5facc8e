"""api/metrics.py: the availability cache's counters (plain ints its searches advance) reach the prometheus metrics
only at ``flush`` (every second from the app's lifespan task, at every scrape, at shutdown), so that a scrape
never shows less than the process counted and nothing is added twice."""

from __future__ import annotations

import re

from prometheus_client import generate_latest

from api.metrics import Metrics


def cache_counts(text: str) -> dict[str, float]:
    found = re.findall(r'^booking_search_cache_total\{outcome="(\w+)"\} ([0-9.e+]+)$', text, re.M)
    return {k: float(v) for k, v in found}


def test_cache_counts_reach_the_metrics_at_flush_and_at_every_scrape() -> None:
    stats = {"hit": 0, "miss": 0, "evict": 0, "stale": 0, "audit_failed": 0}
    reads = []

    def source() -> tuple[dict[str, int], int]:
        reads.append(dict(stats))
        return dict(stats), 4096

    m = Metrics()
    m.watch_search_cache(source)
    stats["miss"] = 2
    for _ in range(50):  # searches count in plain ints: nothing reaches prometheus-client yet
        stats["hit"] += 2
    assert reads == [] and cache_counts(generate_latest(m.registry).decode()) == {}
    m.flush()  # the lifespan task's, every second
    assert len(reads) == 1
    assert cache_counts(generate_latest(m.registry).decode()) == {"hit": 100.0, "miss": 2.0}
    m.flush()  # nothing new: nothing added twice
    assert cache_counts(generate_latest(m.registry).decode()) == {"hit": 100.0, "miss": 2.0}
    stats["hit"] += 6
    text = m.render().decode()  # a scrape flushes first
    assert cache_counts(text) == {"hit": 106.0, "miss": 2.0}
    assert re.search(r"^booking_search_cache_bytes 4096", text, re.M)


def test_without_a_watched_cache_nothing_is_observed() -> None:
    m = Metrics()
    m.flush()
    assert cache_counts(m.render().decode()) == {}
