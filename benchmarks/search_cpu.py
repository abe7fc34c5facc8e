"""CPU per search, in process: the whole API (Litestar app, routes, engine, rendering) called as an ASGI app, no
HTTP server and no load generator, against a real Redis, with the availability cache off and on.

Measured per search: the API's own CPU (``time.process_time`` of this process, which runs only the app) and
Redis's CPU (``used_cpu_user`` + ``used_cpu_sys`` from ``INFO cpu``, so the Redis must not serve anyone else).
On a machine shared with other work these figures move far less than latencies do, which is why
docs/benchmarks.md compares the cache off and on with them.

    python -m benchmarks.search_cpu --redis-url redis://127.0.0.1:6393/14 [--searches 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import time
from typing import Any

from benchmarks.micro.inprocess import asgi, make_app, redis_cpu, seed, sync_redis

AUDIT = os.environ.get("BOOKING_AUDIT_SEARCHES", "1") != "0"


def requests(data: list[dict[str, Any]], n: int, spread: bool, seed_: int = 7) -> list[tuple[str, str]]:
    """``spread``: the bench's mix (1 day 40 %, 2-3 days 30 %, 7 days 30 %, random practice, visit type and date
    within 30 days); else one 1-day search of one practice asked again and again (every search a hit)."""
    rng = random.Random(seed_)
    today = dt.date.today()
    out = []
    for _ in range(n):
        if not spread:
            p, vt, day, days = data[0], data[0]["visit_types"][0], today + dt.timedelta(days=2), 1
        else:
            p = rng.choice(data)
            vt = rng.choice(p["visit_types"])
            day = today + dt.timedelta(days=rng.randint(1, 30))
            x = rng.random()
            days = 1 if x < 0.4 else rng.choice((2, 3)) if x < 0.7 else 7
        out.append((f"/v1/practices/{p['id']}/availability", f"date={day}&visit_type_id={vt}&days={days}"))
    return out


async def _batch(app: Any, r: Any, reqs: list[tuple[str, str]]) -> tuple[float, float, float, int]:
    """API CPU, Redis CPU and wall seconds of one batch of searches (its deferred audits included), and slots."""
    slots = 0
    t_api, t_redis, t_wall = time.process_time(), redis_cpu(r), time.perf_counter()
    for path, q in reqs:
        status, body = await asgi(app, "GET", path, q)
        if status != 200:
            raise RuntimeError(f"search answered {status}: {body[:300]!r}")
        slots += body.count(b'"start"')
    await app.state.engine.searcher.audits.close()  # what is still queued is this batch's work
    return time.process_time() - t_api, redis_cpu(r) - t_redis, time.perf_counter() - t_wall, slots


async def measure(redis_url: str, cache_bytes: int, searches: int, practices: int, rounds: int) -> dict[str, Any]:
    """Two apps in one process, the cache off and on, each on practices of its own in one Redis, measured in
    alternating batches (``rounds`` each): on a shared machine, the median batch is far steadier than one long
    run of each."""
    r = sync_redis(redis_url)
    r.flushdb()
    apps = {"off": make_app(redis_url, 0, AUDIT), "on": make_app(redis_url, cache_bytes, AUDIT)}
    out: dict[str, Any] = {"off": {}, "on": {}}
    async with apps["off"].lifespan(), apps["on"].lifespan():
        data = {m: await seed(app, practices, 4) for m, app in apps.items()}
        for name, spread in (("same 1-day search", False), ("bench mix", True)):
            reqs = {m: requests(data[m], searches, spread) for m in apps}
            for m, app in apps.items():
                await _batch(app, r, reqs[m][:200])  # warm up (the cache's first reads, per-slot fragments)
            per = max(1, searches // rounds)
            got: dict[str, list[tuple[float, float, float, int]]] = {"off": [], "on": []}
            for i in range(rounds):
                for m, app in apps.items():
                    got[m].append(await _batch(app, r, reqs[m][i * per : (i + 1) * per]))
            for m in apps:
                rows = got[m]
                med = [statistics.median(x[k] for x in rows) / per * 1e6 for k in range(3)]
                out[m][name] = {
                    "api_cpu_us": round(med[0]),
                    "redis_cpu_us": round(med[1]),
                    "wall_us": round(med[2]),
                    "api_cpu_us_min": round(min(x[0] for x in rows) / per * 1e6),
                    "slots_per_search": round(sum(x[3] for x in rows) / (per * rounds)),
                    "batches": rounds,
                }
        for m, app in apps.items():
            s = app.state.engine.searcher
            out[m]["cache"] = {
                **s.cache.stats(s.audit_failures),
                "bytes": s.cache.bytes,
                "rendered_bytes": app.state.rendered_days.bytes,
                "audit_batches": s.audits.batches,
            }
    r.close()
    return out


def run(redis_url: str, searches: int, practices: int, cache_bytes: int, log: Any = print) -> dict[str, Any]:
    """Both modes, interleaved, on the same data shape; ``log`` sees a table."""
    out: dict[str, Any] = {"searches": searches, "practices": practices, "redis_url": redis_url}
    out.update(asyncio.run(measure(redis_url, cache_bytes, searches, practices, 10)))
    log(
        f"   {'search':<20} {'cache':<6} {'API CPU µs':>11} {'(min)':>6} {'Redis CPU µs':>13} {'wall µs':>8} {'slots':>6}"
    )
    for name in ("same 1-day search", "bench mix"):
        for label in ("off", "on"):
            m = out[label][name]
            log(
                f"   {name:<20} {label:<6} {m['api_cpu_us']:>11} {m['api_cpu_us_min']:>6} {m['redis_cpu_us']:>13}"
                f" {m['wall_us']:>8} {m['slots_per_search']:>6}"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    a = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    a.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="a Redis nobody else uses (flushed)")
    a.add_argument("--searches", type=int, default=3000)
    a.add_argument("--practices", type=int, default=20)
    a.add_argument("--cache-bytes", type=int, default=64 * 1024 * 1024, help="SEARCH_CACHE_BYTES of the 'on' run")
    a.add_argument("--json", default=None, help="also write the figures to this file")
    o = a.parse_args(argv)
    out = run(o.redis_url, o.searches, o.practices, o.cache_bytes)
    if o.json:
        with open(o.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
