"""Gauges read from Redis and the database at scrape time: the same figures whichever worker answers.

One pass over the practices per scrape (a few round trips each, like `XINFO GROUPS`), so a scrape of
thousands of practices takes a moment: scrape every 15-60 s, not every second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from engine import keys
from engine.codec import text
from engine.redis.errors import RedisError, key_slot
from persistence import quarantine
from persistence.notify.queries import counts_by_status
from persistence.notify.scheduling import QUEUE
from persistence.persister import HELD
from persistence.shards import node_of
from persistence.streams import stream_lag

SHARDS = 16  # practice shards: Redis Cluster hash slots of the practices' hash tags, 1,024 slots each


def shard_of(practice_id: str) -> str:
    """The practice's shard: its hash slot (the slot of every key it has) // 1,024, so 16 shards. A stuck
    practice shows as one shard lagging; the series stay 16 however many practices there are."""
    return str(key_slot(keys.tag(practice_id).encode()) * SHARDS // 16384)


class _Lag:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.events: dict[str, int] = {}
        self.oldest: dict[str, int] = {}

    def add(self, shard: str, one: tuple[int, int] | None) -> None:
        behind, oldest = one if one is not None else (0, self.now_ms)
        self.events[shard] = self.events.get(shard, 0) + behind
        self.oldest[shard] = min(self.oldest.get(shard, self.now_ms), oldest)

    def seconds(self, shard: str | None = None) -> float:
        oldest = min(self.oldest.values(), default=self.now_ms) if shard is None else self.oldest[shard]
        return max(0.0, (self.now_ms - oldest) / 1000)


def redis_families(redis: Any) -> Iterator[Metric]:
    """Persister lag (total and per shard), the notifier's outbox lag, the rq queue, live holds, a PING."""
    started = time.perf_counter()
    redis.ping()
    ping = time.perf_counter() - started
    now_ms = int(time.time() * 1000)
    persist, outbox, by_node = _Lag(now_ms), _Lag(now_ms), _Lag(now_ms)
    practices = sorted(text(raw) for raw in redis.smembers(keys.PRACTICES))
    for pid in practices:
        shard, stream = shard_of(pid), keys.events(pid)
        one = stream_lag(redis, stream, keys.PERSIST_GROUP, now_ms)
        persist.add(shard, one)
        by_node.add(node_of(redis, pid), one)
        outbox.add(shard, stream_lag(redis, stream, keys.NOTIFY_GROUP, now_ms))
    with redis.pipeline(transaction=False) as pipe:
        for pid in practices:
            pipe.zcount(keys.hold_expiries(pid), f"({now_ms}", "+inf")
        pipe.llen(f"rq:queue:{QUEUE}")
        pipe.zcard("rq:scheduler:scheduled_jobs")
        pipe.zcard(f"rq:failed:{QUEUE}")
        *holds, queued, scheduled, failed = pipe.execute()

    yield GaugeMetricFamily("booking_redis_ping_seconds", "Round trip of a PING from the scraped process", ping)
    yield GaugeMetricFamily(
        "booking_persister_held_events", "Events the persister holds back until an operator looks", redis.hlen(HELD)
    )
    yield GaugeMetricFamily(
        "booking_persister_lag_events", "Events not yet stored durably", sum(persist.events.values())
    )
    yield GaugeMetricFamily(
        "booking_persister_lag_seconds", "Age of the oldest event not yet stored", persist.seconds()
    )
    by_shard = GaugeMetricFamily(
        "booking_persister_shard_lag_events", "Events not yet stored durably, by practice shard", labels=["shard"]
    )
    age_by_shard = GaugeMetricFamily(
        "booking_persister_shard_lag_seconds",
        "Age of the oldest event not yet stored, by practice shard",
        labels=["shard"],
    )
    for shard in sorted(persist.events, key=int):
        by_shard.add_metric([shard], persist.events[shard])
        age_by_shard.add_metric([shard], persist.seconds(shard))
    yield by_shard
    yield age_by_shard
    node_events = GaugeMetricFamily(
        "booking_persister_node_lag_events",
        "Events not yet stored durably, by the Redis node (host:port) serving their practices",
        labels=["node"],
    )
    node_age = GaugeMetricFamily(
        "booking_persister_node_lag_seconds", "Age of the oldest event not yet stored, by Redis node", labels=["node"]
    )
    for node in sorted(by_node.events):
        node_events.add_metric([node], by_node.events[node])
        node_age.add_metric([node], by_node.seconds(node))
    yield node_events
    yield node_age
    yield GaugeMetricFamily("booking_persisters_live", "Persisters heartbeating (sharing the practices)", live(redis))
    yield GaugeMetricFamily(
        "booking_outbox_lag_events",
        "Events the notifier has not yet turned into notifications",
        sum(outbox.events.values()),
    )
    yield GaugeMetricFamily("booking_outbox_lag_seconds", "Age of the oldest of them", outbox.seconds())
    jobs = GaugeMetricFamily(
        "booking_notification_jobs", "rq jobs of the notification queue by state", labels=["state"]
    )
    for state, n in (("queued", queued), ("scheduled", scheduled), ("failed", failed)):
        jobs.add_metric([state], int(n))
    yield jobs
    yield GaugeMetricFamily("booking_live_holds", "Holds placed and not yet expired, booked or released", sum(holds))
    yield from waitlist_families(redis, practices)


# The counters of T:wl:stats (docs/waitlist.md), as the metric's ``event`` label.
WAITLIST_COUNTERS = ("joined", "offers", "accepted", "declined", "lapsed", "left")


def waitlist_families(redis: Any, practices: list[str]) -> Iterator[Metric]:
    """Waitlist length (live entries: waiting or offered, per the practices' queues) and the waitlist's
    counters, summed over the practices (one pipeline: a ZCARD and an HMGET per practice)."""
    with redis.pipeline(transaction=False) as pipe:
        for pid in practices:
            pipe.zcard(keys.waitlist_queue(pid))
            pipe.hmget(keys.waitlist_stats(pid), list(WAITLIST_COUNTERS))
        replies = pipe.execute()
    length = sum(int(n) for n in replies[0::2])
    totals = dict.fromkeys(WAITLIST_COUNTERS, 0)
    for counts in replies[1::2]:
        for name, raw in zip(WAITLIST_COUNTERS, counts, strict=True):
            totals[name] += int(raw or 0)
    yield GaugeMetricFamily(
        "booking_waitlist_entries", "Live waitlist entries (waiting or offered) over all practices", length
    )
    events = CounterMetricFamily(
        "booking_waitlist_events",
        "Waitlist entries joined, offers made, accepted, declined, lapsed, entries left, over all practices "
        "(read from Redis at scrape time)",
        labels=["event"],
    )
    for name in WAITLIST_COUNTERS:
        events.add_metric([name], totals[name])
    yield events


def node_lag(redis: Any) -> dict[str, tuple[int, float]]:
    """node -> (events not yet stored, age in s of the oldest) for /readyz; a shard that does not answer is left
    out (its state says so)."""
    now_ms = int(time.time() * 1000)
    by_node = _Lag(now_ms)
    for raw in redis.smembers(keys.PRACTICES):
        pid = text(raw)
        try:
            by_node.add(node_of(redis, pid), stream_lag(redis, keys.events(pid), keys.PERSIST_GROUP, now_ms))
        except RedisError:
            continue
    return {node: (n, by_node.seconds(node)) for node, n in by_node.events.items()}


def live(redis: Any) -> int:
    members = [text(m) for m in redis.smembers(keys.PERSIST_MEMBERS)]
    if not members:
        return 0
    with redis.pipeline(transaction=False) as pipe:
        for m in members:
            pipe.exists(keys.persist_member(m))
        return sum(1 for ok in pipe.execute() if ok)


def database_families(db: Any) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "booking_persister_quarantined_events",
        "Events the persister set aside in its quarantine (the database refused them), not yet replayed",
        quarantine.count_open(db),
    )
    gauge = GaugeMetricFamily("booking_notifications", "Notifications by kind and status", labels=["kind", "status"])
    for (kind, status), n in sorted(counts_by_status(db).items()):
        gauge.add_metric([kind, status], n)
    yield gauge


def redis_up(nodes: dict[str, bool]) -> Metric:
    """``booking_redis_up{node}``: 1 when the node answered the scrape's probe in time, 0 otherwise (down or
    ``timeout``). Present even when Redis is down: the series to alert on."""
    up = GaugeMetricFamily(
        "booking_redis_up", "1 if the Redis node answered this scrape's probe in time, else 0", labels=["node"]
    )
    for node, ok in sorted(nodes.items()):
        up.add_metric([node], 1.0 if ok else 0.0)
    return up


def build_info() -> Metric:
    """``booking_build_info{version,python,redis_py,litestar} 1``."""
    import platform
    from importlib.metadata import version

    info = GaugeMetricFamily(
        "booking_build_info", "The running build (always 1)", labels=["version", "python", "redis_py", "litestar"]
    )
    info.add_metric([package_version(), platform.python_version(), version("redis"), version("litestar")], 1.0)
    return info


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("booking-engine")
    except PackageNotFoundError:
        return "unknown"
