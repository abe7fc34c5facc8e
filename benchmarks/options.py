"""`booking bench` options: a dozen flags, named presets, and `--set NAME=VALUE` for everything else.

Every option has a default (`SETTINGS`, or the flags below); `--preset NAME` (repeatable, or a comma list)
applies a named bundle (`PRESETS`), the flags given override presets, and `--set` overrides both. An old flag that
is now a setting (`--connections 500`) is refused with its new spelling (`--set connections=500`).
"""

from __future__ import annotations

import argparse
import copy
import os
from collections.abc import Callable
from typing import Any

import msgspec

from benchmarks.scenarios import DEFAULT, NAMES

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
    presets: list[str]
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


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def _opt_str(text: str) -> str | None:
    return text or None


def _names(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        out = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in out if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
        return out

    return parse


# The rarely changed options: `--set NAME=VALUE` (NAME as below; lists comma-separated). name: (default, parse, help)
SETTINGS: dict[str, tuple[Any, Callable[[str], Any], str]] = {
    "warmup": (2.0, float, "seconds sent before each measured window"),
    "connections": (2000, int, "concurrent client connections (keep-alive)"),
    "gen_procs": (2, int, "generator processes"),
    "workers": (2, int, "server workers (all three targets)"),
    "server": ("granian", str, "HTTP server of all three targets: granian (`booking serve`'s default) or uvicorn"),
    "practices": (200, int, "practices seeded"),
    "practitioners": (4, int, "practitioners per practice"),
    "horizon": (90, int, "days of availability"),
    "prebook": (5, int, "bookings per practitioner made while seeding"),
    "search_days": (60, int, "searches pick a start date within this many days"),
    "redis_cluster": (
        os.environ.get("REDIS_CLUSTER", "0") == "1",
        _bool,
        "--redis-url lists nodes of a Redis Cluster, comma-separated (default: REDIS_CLUSTER=1 in the environment)",
    ),
    "queue_redis_url": (
        os.environ.get("QUEUE_REDIS_URL") or None,
        _opt_str,
        "with redis_cluster: the standalone Redis of the notification queue (default: $QUEUE_REDIS_URL)",
    ),
    "pg_admin_url": ("postgresql+psycopg://root@127.0.0.1/postgres", str, "PostgreSQL, to create the databases"),
    "db_prefix": ("bench", str, "PostgreSQL databases PREFIX_engine and PREFIX_pgonly (dropped, created)"),
    "slo_p99_ms": (100.0, float, "a rate counts as sustained only with p99 under this"),
    "late_ms": (10.0, float, "a request sent later than this after schedule is late"),
    "timeout": (10.0, float, "request time-out (counted as an error)"),
    "ceiling_rates": (
        [4000.0, 8000.0, 12000.0, 16000.0, 20000.0, 25000.0],
        _floats,
        "rates to drive the trivial server at, to find the generator's own ceiling",
    ),
    "lua_calls": (5000, int, "calls per script and mode in the Redis limits"),
    "scale_sizes": ([10_000, 1_000_000], _ints, "booked appointments in the store (data scale)"),
    "profile": (False, _bool, "py-spy the engine's workers during one step per scenario"),
    "profile_seconds": (12.0, float, "how long each py-spy run lasts"),
    "pgonly_pool": (20, int, "database connections per comparator worker"),
    "engine_env": (
        [],
        str,
        "KEY=VALUE: extra environment for the engine server (diagnostics); each --set engine_env=... adds one",
    ),
    "engine_gc": (
        None,
        _opt_str,
        "G0,G1,G2: gc.set_threshold in the engine's processes (benchmarks/studies/gc_site/sitecustomize.py)",
    ),
    "skip_limits": (False, _bool, "skip the Redis limits and the data-scale measurements"),
    "lock_wait": (1800.0, float, "seconds to wait for another `booking bench` to finish"),
    "cache_bytes": (
        64 * 1024 * 1024,
        int,
        "SEARCH_CACHE_BYTES of the engine-cache target (the engine target runs with 0: the cache off)",
    ),
    "few_clients": (
        "4:250",
        str,
        "CONNECTIONS:RATE: one more search step per engine target with only this many connections (empty: none)",
    ),
    "outage_seconds": (30.0, float, "the outage study: how long its own redis-server is stopped"),
    "outage_rate": (100.0, float, "the outage study: searches per second"),
}

# Named bundles of settings (and of the flags' values): `--preset NAME`.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "quick": (
        "smoke test: every scenario and target for a few seconds on tiny data, with the invariant checks (= --quick)",
        {
            "quick": True,
            "rates": [150.0],
            "duration": 1.5,
            "warmup": 0.5,
            "connections": 50,
            "gen_procs": 1,
            "practices": 3,
            "practitioners": 2,
            "horizon": 14,
            "prebook": 2,
            "search_days": 10,
            "ceiling_rates": [2000.0],
            "lua_calls": 200,
            "scale_sizes": [1000, 5000],
            "profile": False,
            "timeout": 5.0,
            "few_clients": "4:100",
            "outage_seconds": 3.0,
            "outage_rate": 50.0,
        },
    ),
    "table": (
        "the sweep of docs/benchmarks.md's latest table: rates 100 to 6,000/s, 8 s each, py-spy at each knee",
        {"rates": [100.0, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000], "duration": 8.0, "profile": True},
    ),
    "profile": ("py-spy the engine's workers at each scenario's knee", {"profile": True}),
    "uvicorn": ("all three targets served by uvicorn instead of granian", {"server": "uvicorn"}),
    "no-limits": ("skip the Redis limits and the data-scale measurements", {"skip_limits": True}),
    "no-audit": (
        "the engine with search audits off (BOOKING_AUDIT_SEARCHES=0; a diagnostic)",
        {"engine_env": ["BOOKING_AUDIT_SEARCHES=0"]},
    ),
    "redis-cluster": (
        "--redis-url lists nodes of a Redis Cluster (the queue: QUEUE_REDIS_URL or --set queue_redis_url=...)",
        {"redis_cluster": True},
    ),
    "outage": (
        "the outage study only (benchmarks/studies/outage.py): both engine targets through a Redis stopped and "
        "started again",
        {"scenarios": ["outage"], "targets": list(ENGINES), "skip_limits": True, "few_clients": ""},
    ),
}

PRESETS["practice-rules"] = (
    "buffers, daily limits and a shared room (benchmarks/rules.py): the engine only, its rules checked after the run",
    {
        "scenarios": ["rules"],
        "targets": ["engine"],
        "rates": [100.0, 250, 500, 1000],
        "practices": 2,
        "practitioners": 3,
        "prebook": 0,
        "skip_limits": True,
        "few_clients": "",
    },
)

FLAG_DEFAULTS: dict[str, Any] = {
    "scenarios": list(DEFAULT),  # outage and rules only when asked (--scenarios, --preset outage, practice-rules)
    "targets": list(TARGETS),
    "rates": [250.0, 500, 1000, 1500, 2000, 3000, 4000, 6000],
    "duration": 10.0,
    "results": "bench-results",
    "target_url": None,
    "admin_token": None,
    "redis_url": None,
    "database_url": None,
    "cluster": False,
    "quick": False,
}


def parser() -> argparse.ArgumentParser:
    """The flags; every default is None here, so that parse() can tell a flag given from one left out."""
    settings = "\n".join(f"  {n:<16} {h} (default {d!r})" for n, (d, _, h) in SETTINGS.items())
    presets = "\n".join(f"  {n:<16} {h}" for n, (h, _) in PRESETS.items())
    p = argparse.ArgumentParser(
        prog="booking bench",
        description="Open-loop load tests of the engine, side by side with the floor (bare Litestar + one Redis "
        "round trip) and a PostgreSQL-only comparator; invariant checks after every run (docs/benchmarks.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"presets (--preset NAME, repeatable; flags given override them):\n{presets}\n\n"
        f"settings (--set NAME=VALUE, repeatable; override presets and flags):\n{settings}",
    )
    a = p.add_argument
    a("--preset", dest="presets", action="append", default=[], metavar="NAME", help="apply a preset (below)")
    a("--quick", action="store_true", default=None, help="the quick preset: a smoke test of a minute or two")
    a(
        "--scenarios",
        type=_names(NAMES),
        help="comma list of: " + ", ".join(NAMES) + " (default: all but outage, rules)",
    )
    a("--targets", type=_names(TARGETS), help="comma list of: " + ", ".join(TARGETS) + " (default: all)")
    a("--rates", type=_floats, help="offered rates (requests/s) of each sweep; a sweep stops once the server saturates")
    a("--duration", type=float, help="measured seconds per rate (default 10)")
    a("--results", help="folder for the JSON, the PNG and the logs (default bench-results)")
    a(
        "--target",
        dest="target_url",
        help="drive a running engine at this URL instead of starting one (then only the engine is measured)",
    )
    a("--admin-token", help="with --target: the admin token of that engine (its BOOKING_ADMIN_TOKEN)")
    a(
        "--redis-url",
        help="the engine's Redis, empty at the start (the suite flushes what it wrote between targets); default: a "
        "Redis-protocol server of its own, started and stopped here (api/embedded.py, no AOF)",
    )
    a("--database-url", help="with --target: the engine's database, for the invariant checks")
    a(
        "--cluster",
        action="store_true",
        default=None,
        help="also run the engine's scenarios on a local Redis Cluster this run starts (3 primaries, 3 replicas)",
    )
    a("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE", help="one setting (below)")
    return p


def _apply_setting(values: dict[str, Any], item: str) -> None:
    name, eq, raw = item.partition("=")
    name = name.strip().replace("-", "_")
    if not eq or name not in SETTINGS:
        raise SystemExit(f"booking bench: --set wants NAME=VALUE with NAME one of {', '.join(SETTINGS)}; not {item!r}")
    if name == "engine_env":
        if "=" not in raw:
            raise SystemExit(f"booking bench: engine_env wants KEY=VALUE, not {raw!r}")
        values["engine_env"] = [*values["engine_env"], raw]
        return
    try:
        values[name] = SETTINGS[name][1](raw)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise SystemExit(f"booking bench: --set {name}: {exc}") from None


def _refuse_old_flags(unknown: list[str]) -> None:
    presets = {"--profile": "profile", "--skip-limits": "no-limits", "--redis-cluster": "redis-cluster"}
    for arg in unknown:
        flag = arg.split("=", 1)[0]
        name = flag.lstrip("-").replace("-", "_")
        if flag in presets:
            raise SystemExit(f"booking bench: {flag} is now --preset {presets[flag]} (or --set {name}=1)")
        if arg.startswith("--") and name in SETTINGS:
            raise SystemExit(f"booking bench: {flag} is now --set {name}=VALUE (see --help)")
    if unknown:
        parser().error(f"unrecognized arguments: {' '.join(unknown)}")


def parse(argv: list[str]) -> Options:
    ns, unknown = parser().parse_known_args(argv)
    _refuse_old_flags(unknown)
    values: dict[str, Any] = copy.deepcopy({**{n: d for n, (d, _, _) in SETTINGS.items()}, **FLAG_DEFAULTS})
    presets = [x.strip() for item in ns.presets for x in item.split(",") if x.strip()]
    if ns.quick:
        presets.insert(0, "quick")
    for name in presets:
        if name not in PRESETS:
            raise SystemExit(f"booking bench: no preset {name!r}; choose from {', '.join(PRESETS)}")
        for k, v in PRESETS[name][1].items():
            values[k] = [*values[k], *v] if k == "engine_env" else v
    for name in FLAG_DEFAULTS:
        if getattr(ns, name, None) is not None:
            values[name] = getattr(ns, name)
    for item in ns.settings:
        _apply_setting(values, item)
    values["presets"] = presets
    opts = Options(**{f: values[f] for f in Options.__struct_fields__})
    return _check(opts)


def _check(opts: Options) -> Options:
    if opts.server not in ("granian", "uvicorn"):
        raise SystemExit(f"booking bench: server is granian or uvicorn, not {opts.server!r}")
    for item in opts.engine_env:
        if "=" not in item:
            raise SystemExit(f"booking bench: engine_env wants KEY=VALUE, not {item!r}")
    if opts.cluster and (opts.redis_cluster or opts.target_url):
        raise SystemExit(
            "booking bench: --cluster starts its own cluster; not with the redis-cluster preset or --target"
        )
    if opts.redis_cluster:
        if not opts.queue_redis_url:
            raise SystemExit(
                "booking bench: the redis-cluster preset needs --set queue_redis_url=... (or QUEUE_REDIS_URL)"
            )
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
        raise SystemExit("booking bench: the redis-cluster preset needs --redis-url (nodes of the cluster)")
    return opts
