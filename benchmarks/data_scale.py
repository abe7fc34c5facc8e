"""Scale of data: Redis memory per practitioner-day, and search latency as the store grows.

Memory: `MEMORY USAGE` of the `base` zsets (every visit type) and the `claims` zset of sampled practitioners,
divided by the days they cover; bytes per booked appointment from `used_memory` before and after the bulk
load below.

Growth: booked appointments are written straight into Redis, as `book.lua` leaves them (an `appt:<id>` hash
with the same fields, and a `b|<id>|<end>|0` member in the practitioner's `claims` zset), through pipelines
of 5,000 commands, under filler practices (1,000 appointments per practitioner) that are not registered in
`bk:v1:practices`, so no sweeper, persister or reconciliation touches them. Searches of the seeded practices
are then timed at each size: the Lua script alone (sequential EVALSHA) and over HTTP (open loop). The filler
keys are deleted afterwards.
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis as redis_sync

from benchmarks.dataset import Dataset
from benchmarks.redis_limits import ScriptBench
from engine import keys

PER_PRACTITIONER = 1000


def memory_per_day(r: redis_sync.Redis, data: Dataset, sample: int = 40) -> dict[str, Any]:
    base_bytes = claim_bytes = days = members = n = 0
    for p in data.practices:
        for pr in p.practitioners:
            if n >= sample:
                break
            n += 1
            for vt, _ in p.visit_types:
                base_bytes += int(r.memory_usage(keys.base(p.id, pr, vt), samples=0) or 0)
            lo = r.zrange(keys.base(p.id, pr, p.visit_types[0][0]), 0, 0, withscores=True)
            hi = r.zrange(keys.base(p.id, pr, p.visit_types[0][0]), -1, -1, withscores=True)
            if lo and hi:
                days += int((hi[0][1] - lo[0][1]) // 86400) + 1
            claim_bytes += int(r.memory_usage(keys.claims(p.id, pr), samples=0) or 0)
            members += int(r.zcard(keys.claims(p.id, pr)))
    return {
        "practitioners_sampled": n,
        "visit_types_per_practice": len(data.practices[0].visit_types),
        "base_bytes_per_practitioner_day": round(base_bytes / days) if days else None,
        "claims_bytes_per_practitioner_day": round(claim_bytes / days) if days else None,
        "claims_members_sampled": members,
    }


class Filler:
    """Booked appointments written straight into Redis under unregistered filler practices."""

    def __init__(self, r: redis_sync.Redis) -> None:
        self.r = r
        self.keys: list[str] = []
        self.count = 0
        self.t0 = int(time.time()) + 86400 * 400  # far from the seeded calendars

    def add(self, n: int, log: Callable[[str], None]) -> None:
        t = time.time()
        pipe = self.r.pipeline(transaction=False)
        queued = 0
        patient = '{"name":"Filler Patient","email":"filler@example.org"}'
        for i in range(self.count, self.count + n):
            k = i // PER_PRACTITIONER
            pid = f"fe{k // 10:014x}"
            pr = f"{pid}.r{k:012x}"
            aid = f"{pid}.a{secrets.token_urlsafe(12)}"
            start = self.t0 + (i % PER_PRACTITIONER) * 3600
            claims = keys.claims(pid, pr)
            appt = keys.appointment(pid, aid)
            if i % PER_PRACTITIONER == 0:
                self.keys.append(claims)
            self.keys.append(appt)
            pipe.hset(
                appt,
                mapping={
                    "status": "booked",
                    "version": "1",
                    "practice_id": pid,
                    "practitioner_id": pr,
                    "visit_type_id": f"{pid}.v000000000000",
                    "start": start,
                    "end": start + 1800,
                    "patient": patient,
                    "manage_hash": "0" * 64,
                    "hold_id": f"{pr}.h{secrets.token_urlsafe(16)}",
                    "created_ms": start * 1000,
                    "updated_ms": start * 1000,
                },
            )
            pipe.zadd(claims, {f"b|{aid}|{start + 1800}|0": start})
            queued += 2
            if queued >= 5000:
                pipe.execute()
                queued = 0
        pipe.execute()
        self.count += n
        log(f"    wrote {n} booked appointments into Redis ({time.time() - t:.0f}s; {self.count} filler in all)")

    def remove(self) -> None:
        for i in range(0, len(self.keys), 5000):
            self.r.unlink(*self.keys[i : i + 5000])
        self.keys.clear()


def _lua_search_us(bench: ScriptBench, n: int) -> dict[str, float]:
    sha = bench.sha["search"]
    times = []
    for i in range(n):
        c = bench.search_call(i, 1 + (i % 3) * 3)
        k, a = c.keys, c.args
        t = time.perf_counter()
        bench.r.evalsha(sha, len(k), *k, *a)
        times.append((time.perf_counter() - t) * 1e6)
    times.sort()
    return {
        "mean_us": round(statistics.fmean(times), 1),
        "p50_us": round(times[len(times) // 2], 1),
        "p99_us": round(times[int(len(times) * 0.99)], 1),
    }


def run(
    redis_url: str,
    data: Dataset,
    sizes: list[int],
    http_probe: Callable[[], dict[str, Any]] | None,
    lua_calls: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    r = redis_sync.Redis.from_url(redis_url)
    bench = ScriptBench(redis_url, data, log)
    filler = Filler(r)
    out: dict[str, Any] = {
        "memory": memory_per_day(r, data),
        "method": "direct pipelines (see module doc)",
        "sizes": [],
    }
    try:
        for size in sorted(sizes):
            before = int(r.info("memory")["used_memory"])
            filler.add(size - filler.count, log)
            grown = int(r.info("memory")["used_memory"]) - before
            row: dict[str, Any] = {"booked_in_store": size, "lua_search": _lua_search_us(bench, lua_calls)}
            if size == min(sizes) or not out["sizes"]:
                out["memory"]["bytes_per_booked_appointment"] = round(grown / max(1, size))
            if http_probe is not None:
                row["http_search"] = http_probe()
            log(
                f"    {size} booked: lua search p50 {row['lua_search']['p50_us']} us"
                + (f", http search p99 {row['http_search']['p99']} ms" if "http_search" in row else "")
            )
            out["sizes"].append(row)
        out["memory"]["used_memory_mb_at_largest"] = round(int(r.info("memory")["used_memory"]) / 2**20, 1)
    finally:
        filler.remove()
        bench.close()
        r.close()
    return out
