"""`booking bench` options, and the `--quick` preset."""

from __future__ import annotations

import argparse
import os
from typing import Any

import msgspec

from benchmarks.scenarios import NAMES

TARGETS = ("engine", "engine-cache", "floor", "pgonly")
ENGINES = ("engine", "engine-cache")  # the engine with the availability cache off (SEARCH_CACHE_BYTES=0) and on


class Options(msgspec.Struct):
    scenarios: list[str]
    targets: list[str]
    rates: list[float]
    duration: float
    warmup: float
    connections: int
    gen_procs: int
    workers: int
    server: str
    practices: int
    practitioners: int
    horizon: int
    prebook: int
    search_days: int
    results: str
    target_url: str | None
    admin_token: str | None
    redis_url: str | None
    redis_cluster: bool
    cluster: bool
    queue_redis_url: str | None
    database_url: str | None
    pg_admin_url: str
    slo_p99_ms: float
    late_ms: float
    timeout: float
    ceiling_rates: list[float]
    lua_calls: int
    scale_sizes: list[int]
    profile: bool
    profile_seconds: float
    pgonly_pool: int
    engine_env: list[str]
    engine_gc: str | None
    skip_limits: bool
    db_prefix: str
    lock_wait: float
    quick: bool
    cache_bytes: int
    few_clients: str
    outage_seconds: float
    outage_rate: float

    def redis(self) -> Any:
        """A client of the engine's Redis: one server, or every node of a cluster (engine/redis/clients.py)."""
        from engine.redis import clients

        assert self.redis_url is not None, "benchmarks/cli.py sets it (a server of its own) before a run"
        return clients.redis_for(self.redis_url, cluster=self.redis_cluster)

    def redis_env(self) -> dict[str, str]:
        """The engine's and the floor's Redis settings (API.md's configuration)."""
        assert self.redis_url is not None
        env = {"REDIS_URL": self.redis_url}
        if self.redis_cluster:
            env.update({"REDIS_CLUSTER": "1", "QUEUE_REDIS_URL": self.queue_redis_url or ""})
        return env


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def _names(allowed: tuple[str, ...]) -> object:
    def parse(text: str) -> list[str]:
        out = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in out if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
        return out

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="booking bench",
        description="Open-loop load tests of the engine, side by side with the floor (bare Litestar + one Redis "
        "round trip) and a PostgreSQL-only comparator; invariant checks after every run (docs/benchmarks.md).",
    )
    a = p.add_argument
    a("--scenarios", type=_names(NAMES), default=list(NAMES), help="comma list of: " + ", ".join(NAMES))
    a("--targets", type=_names(TARGETS), default=list(TARGETS), help="comma list of: " + ", ".join(TARGETS))
    a(
        "--rates",
        type=_floats,
        default=[250, 500, 1000, 1500, 2000, 3000, 4000, 6000],
        help="offered rates (requests/s) of each sweep; a sweep stops once the server is saturated",
    )
    a("--duration", type=float, default=10.0, help="measured seconds per rate")
    a("--warmup", type=float, default=2.0, help="seconds sent before the measured window")
    a("--connections", type=int, default=2000, help="concurrent client connections (keep-alive)")
    a("--gen-procs", type=int, default=2, help="generator processes")
    a("--workers", type=int, default=2, help="server workers (all three targets)")
    a(
        "--server",
        choices=["granian", "uvicorn"],
        default="granian",
        help="HTTP server of all three targets (granian is `booking serve`'s default)",
    )
    a("--practices", type=int, default=200)
    a("--practitioners", type=int, default=4, help="per practice")
    a("--horizon", type=int, default=90, help="days of availability")
    a("--prebook", type=int, default=5, help="bookings per practitioner made while seeding")
    a("--search-days", type=int, default=60, help="searches pick a start date within this many days")
    a("--results", default="bench-results", help="folder for the JSON, the PNG and the logs")
    a(
        "--target",
        dest="target_url",
        default=None,
        help="drive a running engine at this URL instead of starting one (then only the engine is measured)",
    )
    a(
        "--admin-token",
        default=None,
        help="with --target: the admin token of that engine (its BOOKING_ADMIN_TOKEN); every request carries it",
    )
    a(
        "--redis-url",
        default=None,
        help="the engine's Redis, empty at the start (the suite flushes what it wrote between targets); default: a "
        "Redis-protocol server of its own, started and stopped here (api/embedded.py, no AOF)",
    )
    a(
        "--redis-cluster",
        action="store_true",
        default=os.environ.get("REDIS_CLUSTER", "0") == "1",
        help="--redis-url lists nodes of a Redis Cluster, comma-separated (default: REDIS_CLUSTER=1)",
    )
    a(
        "--cluster",
        action="store_true",
        help="also run the engine's scenarios on a local Redis Cluster this run starts (3 primaries, 3 replicas; "
        "api/devcluster.py), with each node's CPU, the scripts per shard against the single Redis, and the WAIT 1 cost",
    )
    a(
        "--queue-redis-url",
        default=os.environ.get("QUEUE_REDIS_URL") or None,
        help="with --redis-cluster: the standalone Redis of the notification queue (default: QUEUE_REDIS_URL)",
    )
    a("--database-url", default=None, help="with --target: the engine's database, for the invariant checks")
    a("--pg-admin-url", default="postgresql+psycopg://root@127.0.0.1/postgres")
    a("--slo-p99-ms", type=float, default=100.0, help="a rate counts as sustained only with p99 under this")
    a("--late-ms", type=float, default=10.0, help="a request sent later than this after schedule is late")
    a("--timeout", type=float, default=10.0, help="request time-out (counted as an error)")
    a(
        "--ceiling-rates",
        type=_floats,
        default=[4000, 8000, 12000, 16000, 20000, 25000],
        help="rates to drive the trivial server at, to find the generator's own ceiling",
    )
    a("--lua-calls", type=int, default=5000, help="calls per script and mode in the Redis limits")
    a("--scale-sizes", type=_ints, default=[10_000, 1_000_000], help="booked appointments in the store")
    a("--profile", action="store_true", help="py-spy the engine's workers during one step per scenario")
    a("--profile-seconds", type=float, default=12.0)
    a("--pgonly-pool", type=int, default=20, help="database connections per comparator worker")
    a(
        "--engine-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the engine server (diagnostics, e.g. BOOKING_AUDIT_SEARCHES=0); repeatable",
    )
    a(
        "--engine-gc",
        default=None,
        metavar="G0,G1,G2",
        help="diagnostics: gc.set_threshold in the engine's processes (benchmarks/gc_site/sitecustomize.py)",
    )
    a(
        "--cache-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="SEARCH_CACHE_BYTES of the engine-cache target (the engine target runs with 0: the cache off)",
    )
    a(
        "--few-clients",
        default="4:250",
        metavar="CONNECTIONS:RATE",
        help="one more search step per engine target with only this many connections (empty: none)",
    )
    a(
        "--outage-seconds",
        type=float,
        default=30.0,
        help="the outage scenario: how long its own redis-server is stopped during the search sweep",
    )
    a("--outage-rate", type=float, default=100.0, help="the outage scenario: searches per second")
    a("--skip-limits", action="store_true", help="skip the Redis limits and the data-scale measurements")
    a("--db-prefix", default="bench", help="PostgreSQL databases PREFIX_engine and PREFIX_pgonly (dropped, created)")
    a("--lock-wait", type=float, default=1800.0, help="seconds to wait for another `booking bench` to finish")
    a(
        "--quick",
        action="store_true",
        help="smoke test: every scenario and target for a few seconds on tiny data, with the invariant checks",
    )
    return p


def parse(argv: list[str]) -> Options:
    ns = parser().parse_args(argv)
    opts = Options(**{f: getattr(ns, f) for f in Options.__struct_fields__})
    if opts.quick:
        opts.rates, opts.duration, opts.warmup = [150.0], 1.5, 0.5
        opts.connections, opts.gen_procs = 50, 1
        opts.practices, opts.practitioners, opts.horizon, opts.prebook, opts.search_days = 3, 2, 14, 2, 10
        opts.ceiling_rates, opts.lua_calls, opts.scale_sizes = [2000.0], 200, [1000, 5000]
        opts.profile, opts.timeout = False, 5.0
        opts.few_clients, opts.outage_seconds, opts.outage_rate = "4:100", 3.0, 50.0
    for item in opts.engine_env:
        if "=" not in item:
            raise SystemExit(f"booking bench: --engine-env wants KEY=VALUE, not {item!r}")
    if opts.cluster and (opts.redis_cluster or opts.target_url):
        raise SystemExit("booking bench: --cluster starts its own cluster; not with --redis-cluster or --target")
    if opts.redis_cluster:
        if not opts.queue_redis_url:
            raise SystemExit("booking bench: --redis-cluster needs --queue-redis-url (or QUEUE_REDIS_URL)")
        # the per-script limits and the data scale drive one Redis (pipelined EVALSHA, bulk loads)
        opts.skip_limits = True
    if opts.target_url:
        if not opts.admin_token:
            raise SystemExit("booking bench: --target needs --admin-token (the BOOKING_ADMIN_TOKEN of that engine)")
        if not opts.redis_url:
            raise SystemExit(
                "booking bench: --target needs --redis-url (that engine's Redis, for the invariant checks)"
            )
        opts.targets = ["engine"]
        opts.skip_limits = True  # never bulk-load filler data or run raw scripts against someone's deployment
    elif opts.admin_token:
        raise SystemExit("booking bench: --admin-token goes with --target (the engines it starts use their own)")
    else:
        from benchmarks.targets import ADMIN_TOKEN

        opts.admin_token = ADMIN_TOKEN
    if opts.redis_cluster and not opts.redis_url:
        raise SystemExit("booking bench: --redis-cluster needs --redis-url (nodes of the cluster)")
    return opts
