"""Prometheus metrics: requests by route and status, latency histograms, Redis round trips and pool waits.

Under `booking serve` every worker writes its counters and histograms to files in PROMETHEUS_MULTIPROC_DIR
(set up, emptied, by `booking serve`: api/metrics_dir.py) and a scrape, whichever worker answers it, adds up
all workers' files (prometheus-client's multiprocess mode). Without that variable (tests, an app mounted
elsewhere) the numbers are this process's own. Gauges read from Redis and the database at scrape time
(api/gauges.py) are global either way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from api import logs

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FLUSH_S = 1.0  # how often the availability cache's counters reach the prometheus metrics (``flush``)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Families:
    """A collector yielding metric families computed elsewhere (the scrape-time gauges)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        if self.multiprocess_dir is not None and values.ValueClass.__name__ != "MmapedValue":
            # prometheus_client was imported before the variable was set: write to the files all the same
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # unannotated upstream
        self.requests = Counter(
            "booking_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "booking_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.domain = Counter(
            "booking_operations_total",
            "Booking operations by outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.holds_expired = Counter(
            "booking_holds_expired_total", "Holds tidied by the sweeper", registry=self.registry
        )
        self.redis_latency = Histogram(
            "booking_redis_command_duration_seconds",
            "Redis round trips of the API by command (EVALSHA: the scripts; PIPELINE: a whole pipeline), "
            "including the wait for a pooled connection and a read's one retry",
            ["command"],
            buckets=REDIS_BUCKETS,
            registry=self.registry,
        )
        self.script_latency = Histogram(
            "booking_script_duration_seconds",
            "Lua script calls of the API by script name (hold, book, cancel, search...), each run alone, including "
            "the wait for a pooled connection (and on Redis Cluster the replica's WAIT of book, cancel, reschedule)",
            ["script"],
            buckets=REDIS_BUCKETS,
            registry=self.registry,
        )
        self.redis_pool_wait = Histogram(
            "booking_redis_pool_wait_seconds",
            "Waits for a connection of the process's Redis pool (REDIS_POOL_SIZE, REDIS_POOL_TIMEOUT_SECONDS)",
            buckets=REDIS_BUCKETS,
            registry=self.registry,
        )
        self.redis_pool_exhausted = Counter(
            "booking_redis_pool_exhausted_total",
            "Requests answered 503 because no pooled Redis connection freed up within REDIS_POOL_TIMEOUT_SECONDS",
            registry=self.registry,
        )

        self.search_cache = Counter(
            "booking_search_cache_total",
            "Availability cache: practitioner-days answered from it (hit), computed again (miss), dropped to stay "
            "within SEARCH_CACHE_BYTES (evict); searches answered stale while Redis was down (stale); search audit "
            "appends that failed twice (audit_failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.search_cache_bytes = Gauge(
            "booking_search_cache_bytes",
            "Bytes held by the availability caches (summed over live workers)",
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self._cache_seen: dict[str, int] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._cache_source: Callable[[], tuple[dict[str, int], int]] | None = None

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: prometheus-client takes a lock and builds the key on every call, and
        this runs several times per request (the label sets are few: routes, statuses, commands, scripts)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def watch_search_cache(self, source: Callable[[], tuple[dict[str, int], int]]) -> None:
        """Where this process's availability cache counts (its counters, and the bytes both caches hold)."""
        self._cache_source = source

    def flush(self) -> None:
        """Bring the availability cache's counters (plain ints its searches advance) into the prometheus metrics:
        every ``FLUSH_S`` (a task of the app's lifespan), at every scrape this process answers (``render``) and at
        shutdown, not after every search: prometheus-client's updates each take a lock and cost about as much as
        a cached search's own work. Requests are counted as they end (a scrape adds up every worker's exactly)."""
        self.observe_search_cache()

    def observe_search_cache(self) -> None:
        """Advance the counters by what the process's cache counted since the last call."""
        if self._cache_source is None:
            return
        stats, size = self._cache_source()
        for outcome, total in stats.items():
            delta = total - self._cache_seen.get(outcome, 0)
            if delta:
                self.child(self.search_cache, outcome).inc(delta)
                self._cache_seen[outcome] = total
        self.search_cache_bytes.set(size)

    def observe_redis(self, command: str, seconds: float) -> None:
        self.child(self.redis_latency, command).observe(seconds)

    def observe_script(self, script: str, seconds: float) -> None:
        self.child(self.script_latency, script).observe(seconds)

    def render(self, scraped: Iterable[Metric] = ()) -> bytes:
        """Every worker's counters and histograms (or this process's), then the scrape-time gauges. The cache
        counters of the process answering are brought up to date first (another worker's within a second)."""
        self.flush()
        if self.multiprocess_dir is not None:
            aggregate = CollectorRegistry()
            MultiProcessCollector(aggregate, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]  # unannotated upstream
            text = generate_latest(aggregate)
        else:
            text = generate_latest(self.registry)
        now = CollectorRegistry()
        now.register(_Families(scraped))
        return text + generate_latest(now)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        # visible ASCII only: the id is stored in the audit trail, where a control character (NUL) is refused
        if name == b"x-request-id" and 0 < len(value) <= 64 and all(0x20 < b < 0x7F for b in value):
            return value.decode()
    return os.urandom(16).hex()  # 128 random bits as 32 hex digits, as uuid4().hex gave, at a sixth of its cost


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        metrics: Metrics = scope["app"].state.metrics
        started = time.perf_counter()
        status = {"code": 500}
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        in_logs = logs.request_id.set(request_id)  # every log line this request causes carries it

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                state = scope["state"]
                quota = state.get("ratelimit")
                if quota is not None:  # a limit applied to this request (api/routes/common.py ``limited``)
                    extra += [(b"ratelimit-limit", b"%d" % quota[0]), (b"ratelimit-remaining", b"%d" % quota[1]),
                              (b"ratelimit-reset", b"%d" % quota[2])]  # fmt: skip
                extra += state.get("response_headers", ())  # fields a route left as bytes (the search's ETag)
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("path_template") or "unmatched"
            took = time.perf_counter() - started
            method: Any = scope.get("method", "")
            metrics.child(metrics.requests, method, route, str(status["code"])).inc()
            metrics.child(metrics.latency, method, route).observe(took)
            if scope["app"].state.settings.access_log:
                logs.log_request(scope.get("method", ""), scope.get("path", ""), status["code"], took)
            logs.request_id.reset(in_logs)

    return middleware
