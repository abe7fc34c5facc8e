"""What one large search costs a worker (issue 22, "Also seen": a 31-day anonymous search of a large practice open
round the clock was a 62 MiB answer; 8 at once took 5 s and 384 MiB of worker memory). A study, not part of
``booking bench``: it runs the API in process against the Redis and PostgreSQL the tests use, sets up a practice
open 24 hours a day every day (``--practitioners``, 1-minute slot step, 30-minute visits), and asks the 31-day
search anonymously, ``--concurrency`` at once, with the availability cache on and off.

    .venv/bin/python -m benchmarks.studies.search_bound --cache on|off [--practitioners 10] [--concurrency 8] \
        [--redis-url redis://127.0.0.1:6379/12] [--max-slots N]

Prints, per cache mode: the answer's size and slot count, the wall time of the concurrent searches, the
Python heap's peak during them (tracemalloc, a separate run) and the growth of the process's peak RSS.
With no bound (``--max-slots 1000000``, what the answer was before SEARCH_MAX_SLOTS) and with the default.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import resource
import time
import tracemalloc
from typing import Any

from litestar.testing import AsyncTestClient, TestClient
from redis import Redis

from api.app import create_app
from tests.support.config import WEEKDAYS, settings_for
from tests.support.databases import fresh_database
from tests.support.http import setup_practice

MiB = 1024 * 1024


async def _searches(app: Any, path: str, params: dict[str, Any], n: int) -> list[Any]:
    async with AsyncTestClient(app) as ac:  # no Authorization header: an anonymous search
        return list(await asyncio.gather(*(ac.get(path, params=params) for _ in range(n))))


def measure(practitioners: int, concurrency: int, redis_url: str, cache_bytes: int, **kw: Any) -> dict[str, Any]:
    url = fresh_database("booking_bound_study")
    settings = settings_for(redis_url, database_url=url, search_cache_bytes=cache_bytes, audit_searches=False, **kw)
    Redis.from_url(redis_url).flushdb()
    app = create_app(settings)
    with TestClient(app) as c:
        c.headers.update({"Authorization": "Bearer test-admin-token"})
        every_day = [{"day": d, "start": "00:00", "end": "24:00"} for d in WEEKDAYS]
        ctx = setup_practice(
            c, tz="Europe/Paris", practitioners=practitioners, weekly=every_day, slot_step_minutes=1, horizon_days=60
        )
    day = dt.date.today() + dt.timedelta(days=2)
    path = f"/v1/practices/{ctx['practice_id']}/availability"
    params = {"date": day.isoformat(), "visit_type_id": ctx["visit_types"][30], "days": 31}
    out: dict[str, Any] = {}
    # timing run (the first answers warm whatever the cache keeps; the measured run is the second)
    asyncio.run(_searches(app, path, params, 1))
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    answers = asyncio.run(_searches(app, path, params, concurrency))
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_growth_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    first = answers[0]
    assert first.status_code == 200, first.text
    body = first.json()
    out["bytes"] = len(first.content)
    out["slots"] = len(body["slots"])
    out["truncated"] = body.get("truncated")
    out["next"] = body.get("next")
    del answers, first, body
    gc.collect()
    tracemalloc.start()
    try:
        asyncio.run(_searches(app, path, params, concurrency))
        out["heap_peak_mib"] = tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--practitioners", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--max-slots", type=int, default=None, help="SEARCH_MAX_SLOTS (default: the setting's)")
    ap.add_argument("--cache", choices=["on", "off"], required=True, help="one mode per process (its metrics)")
    a = ap.parse_args()
    for label, cache in ((f"cache {a.cache}", 64 * MiB if a.cache == "on" else 0),):
        kw = {} if a.max_slots is None else {"search_max_slots": a.max_slots}
        r = measure(a.practitioners, a.concurrency, a.redis_url, cache, **kw)
        print(
            f"{label}: {r['slots']} slots, {r['bytes'] / MiB:.1f} MiB per answer (truncated={r['truncated']}, "
            f"next={r['next']}); {a.concurrency} at once: {r['seconds']:.2f} s, "
            f"peak RSS +{r['peak_rss_growth_mib']:.0f} MiB, Python heap peak {r['heap_peak_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
