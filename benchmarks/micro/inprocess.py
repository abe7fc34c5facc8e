"""API CPU per cached search and per hold, in process: the whole API (Litestar app, routes, engine, rendering) called
as an ASGI app, no HTTP server and no load generator, against a real Redis (issue 20's "no higher than today").

Measured per operation: the API's own CPU (``time.process_time`` of this process, which runs only the app) and
Redis's CPU (``used_cpu_user`` + ``used_cpu_sys`` of ``INFO cpu``: the Redis must serve nobody else). Operations:

- ``search``: one 1-day search of one practice asked again and again with the availability cache on (every
  search a hit, its deferred audit included);
- ``hold``: ``POST /v1/holds`` then ``DELETE /v1/holds/{id}`` with the admin token (no abuse limits), cycling
  over the starts a search offered;
- ``hold-public``: the same as a public client (no token: the abuse limits are counted, set high enough never to
  refuse).

The operations run in alternating batches (``--rounds``); per operation the mean over all batches and the
fastest batch are reported (on a shared machine the minimum moves least).

This file imports nothing of ``benchmarks`` beyond ``benchmarks.seed.weekly`` and only the API's public entry
points, so it also measures an older checkout: run it by path with that checkout's interpreter::

    .venv/bin/python -m benchmarks.micro.inprocess --redis-url redis://127.0.0.1:6379/14 [--ops 2000]
    /tmp/old/.venv/bin/python benchmarks/micro/inprocess.py --redis-url ...     # the old code, this harness
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

TOKEN = "cpu-bench-token"
AUTH = [(b"authorization", f"Bearer {TOKEN}".encode())]
OPS = ("search", "hold", "hold-public")
CACHE_BYTES = 64 * 1024 * 1024


async def asgi(
    app: Any, method: str, path: str, query: str = "", body: Any = None, auth: bool = True
) -> tuple[int, bytes]:
    """One request through the ASGI app: status and body (``auth``: with the admin token)."""
    out: dict[str, Any] = {"body": b""}
    raw = json.dumps(body).encode() if body is not None else b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            out["status"] = msg["status"]
        elif msg["type"] == "http.response.body":
            out["body"] += msg.get("body", b"")

    headers = list(AUTH) if auth else []
    if raw:
        headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return out["status"], out["body"]


async def call(app: Any, method: str, path: str, body: Any, want: int, query: str = "", auth: bool = True) -> Any:
    status, out = await asgi(app, method, path, query, body, auth)
    if status != want:
        raise RuntimeError(f"{method} {path}: {status} {out[:300]!r}")
    return json.loads(out) if out else None


def redis_cpu(r: Any) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def sync_redis(url: str) -> Any:
    """A plain client for INFO and FLUSHDB, through the engine's Redis package where it has one (older checkouts:
    redis-py directly)."""
    try:
        from engine.redis import clients

        return clients.redis_for(url, cluster=False)
    except ImportError:
        import redis

        return redis.Redis.from_url(url)


def make_app(redis_url: str, cache_bytes: int, audit: bool = True) -> Any:
    """The API on ``redis_url`` and a fresh SQLite file, migrated, without background tasks."""
    from sqlalchemy import create_engine

    from api.app import create_app
    from engine.settings import Settings
    from persistence import migrate

    db_url = "sqlite:///" + tempfile.NamedTemporaryFile(suffix=".db", delete=False).name
    settings = Settings(
        redis_url=redis_url,
        database_url=db_url,
        admin_token=TOKEN,
        audit_searches=audit,
        search_cache_bytes=cache_bytes,
        limit_holds_per_minute=10**9,
        limit_live_holds=10**6,
    )
    engine = create_engine(db_url)
    migrate.upgrade(engine)
    engine.dispose()
    return create_app(settings, background=False, reconcile_on_start=False)


async def seed(app: Any, practices: int, practitioners: int, horizon: int = 60) -> list[dict[str, Any]]:
    """Practices of 30- and 45-minute visit types and practitioners on the bench's weekly hours."""
    from benchmarks.seed import weekly

    out = []
    for p in range(practices):
        pid = (await call(app, "POST", "/v1/practices", {"name": f"P{p}", "timezone": "Europe/Paris"}, 201))["id"]
        vts = []
        for m in (30, 45):
            vt = await call(
                app, "POST", f"/v1/practices/{pid}/visit-types", {"name": f"V{m}", "duration_minutes": m}, 201
            )
            vts.append(vt["id"])
        prs = []
        for i in range(practitioners):
            pr = (await call(app, "POST", f"/v1/practices/{pid}/practitioners", {"name": f"Dr {i}"}, 201))["id"]
            body = {"weekly": weekly(i), "slot_step_minutes": 15, "horizon_days": horizon}
            await call(app, "PUT", f"/v1/practitioners/{pr}/schedule", body, 200)
            prs.append(pr)
        out.append({"id": pid, "visit_types": vts, "practitioners": prs})
    return out


def search_query(practice: dict[str, Any], day: dt.date, days: int = 1) -> tuple[str, str]:
    path = f"/v1/practices/{practice['id']}/availability"
    return path, f"date={day}&visit_type_id={practice['visit_types'][0]}&days={days}"


async def offered(app: Any, practice: dict[str, Any], first: dt.date, days: int) -> list[dict[str, str]]:
    """Hold bodies for every start the practice offers for its first visit type over ``days`` days."""
    path, query = search_query(practice, first, days)
    answer = await call(app, "GET", path, None, 200, query)
    vt = practice["visit_types"][0]
    return [
        {"practitioner_id": s["practitioner_id"], "visit_type_id": vt, "start": s["start"]} for s in answer["slots"]
    ]


class Ops:
    """The measured operations on one app: each call does one operation."""

    def __init__(self, app: Any, practice: dict[str, Any], starts: list[dict[str, str]]) -> None:
        self.app, self.starts, self.i = app, starts, 0
        self.search_path, self.search_q = search_query(practice, dt.date.today() + dt.timedelta(days=2))

    async def search(self) -> None:
        status, body = await asgi(self.app, "GET", self.search_path, self.search_q)
        if status != 200:
            raise RuntimeError(f"search answered {status}: {body[:300]!r}")

    async def _hold(self, auth: bool) -> None:
        body = self.starts[self.i % len(self.starts)]
        self.i += 1
        hold = await call(self.app, "POST", "/v1/holds", body, 201, auth=auth)
        await call(self.app, "DELETE", f"/v1/holds/{hold['id']}", None, 204, auth=auth)

    async def hold(self) -> None:
        await self._hold(True)

    async def hold_public(self) -> None:
        await self._hold(False)

    def get(self, name: str) -> Callable[[], Awaitable[None]]:
        return getattr(self, name.replace("-", "_"))  # type: ignore[no-any-return]

    async def settle(self) -> None:
        """Finish the work a search leaves queued (its audit), so that it counts in its own batch."""
        searcher = self.app.state.engine.searcher
        await searcher.audits.close()


async def batch(ops: Ops, name: str, n: int, r: Any) -> tuple[float, float]:
    """API CPU and Redis CPU seconds of ``n`` operations (their deferred audits included)."""
    op = ops.get(name)
    t_api, t_redis = time.process_time(), redis_cpu(r)
    for _ in range(n):
        await op()
    await ops.settle()
    return time.process_time() - t_api, redis_cpu(r) - t_redis


async def measure(redis_url: str, ops_n: int, rounds: int, names: tuple[str, ...] = OPS) -> dict[str, Any]:
    r = sync_redis(redis_url)
    r.flushdb()
    app = make_app(redis_url, CACHE_BYTES)
    out: dict[str, Any] = {}
    async with app.lifespan():
        practice = (await seed(app, 1, 4))[0]
        ops = Ops(app, practice, await offered(app, practice, dt.date.today() + dt.timedelta(days=3), 14))
        per = max(1, ops_n // rounds)
        for name in names:  # warm up: the cache's first reads, the scripts loaded, per-slot fragments
            await batch(ops, name, min(200, per), r)
        got: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        for _ in range(rounds):
            for name in names:
                got[name].append(await batch(ops, name, per, r))
        for name in names:
            rows = got[name]
            out[name] = {
                "api_cpu_us_mean": round(sum(x[0] for x in rows) / (per * rounds) * 1e6, 1),
                "api_cpu_us_min": round(min(x[0] for x in rows) / per * 1e6, 1),
                "redis_cpu_us_mean": round(sum(x[1] for x in rows) / (per * rounds) * 1e6, 1),
                "ops": per * rounds,
            }
    r.flushdb()
    r.close()
    return out


def describe() -> dict[str, str]:
    """Which code was measured: the checkout's commit, where it can be read."""
    import subprocess

    import api

    root = os.path.dirname(os.path.dirname(os.path.abspath(api.__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return {"checkout": root, "commit": commit, "python": sys.version.split()[0]}


def table(label: str, out: dict[str, Any]) -> list[str]:
    lines = []
    for name, m in out.items():
        lines.append(
            f"{label:<14} {name:<12} {m['api_cpu_us_mean']:>10.1f} {m['api_cpu_us_min']:>9.1f}"
            f" {m['redis_cpu_us_mean']:>12.1f} {m['ops']:>7}"
        )
    return lines


HEADER = f"{'code':<14} {'operation':<12} {'API µs mean':>10} {'API µs min':>9} {'Redis µs mean':>12} {'ops':>7}"


def main(argv: list[str] | None = None) -> None:
    a = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    a.add_argument("--redis-url", required=True, help="a Redis database nobody else uses (flushed before and after)")
    a.add_argument("--ops", type=int, default=2000, help="measured operations of each kind")
    a.add_argument("--rounds", type=int, default=10, help="batches of each kind, alternating")
    a.add_argument("--only", default=",".join(OPS), help="comma list of: " + ", ".join(OPS))
    a.add_argument("--json", default=None, help="also write the figures (and the commit measured) to this file")
    o = a.parse_args(argv)
    names = tuple(x for x in o.only.split(",") if x)
    out = asyncio.run(measure(o.redis_url, o.ops, o.rounds, names))
    who = describe()
    print(HEADER)
    print("\n".join(table(who["commit"], out)))
    if o.json:
        with open(o.json, "w") as f:
            json.dump({**who, "ops": out}, f, indent=1)


if __name__ == "__main__":
    main()
