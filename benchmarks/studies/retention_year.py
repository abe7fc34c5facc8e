"""A simulated year of bookings: Redis memory with and without the retention (issue 12 item 9). A study, not part of
``booking bench``.

Conclusion (2026-12-02, 5 practices x 8 practitioners, 16 bookings a practitioner-day, 167,040 bookings): Redis
held 413.8 MB after the year as the engine was before the retention (appointments 199 MB, streams 226 MB pinned by
an idle notifier group), 220.8 MB with streams trimmed to what running consumers need, and 61.3 MB once
appointments ended more than 90 days before left (``APPOINTMENT_RETENTION_DAYS=90``): memory is bounded by the
horizon and the retention, not the history (figures: benchmarks/results/2026-11-25_to_12-03-notebook.md).
tests/integration/test_retention.py runs it on a few simulated weeks.

Runs the engine itself (BookingEngine on the given Redis, with a simulated clock that advances a day at a time)
on an empty Redis database and a fresh PostgreSQL database: ``--practices`` practices of ``--practitioners``
practitioners each, open Monday to Friday 08:00-18:00 (30-minute visits, 30-minute step, 90-day horizon). Every
simulated working day, each practitioner gets ``--per-day`` bookings (hold then book, through the scripts) on
the next day, and the daily horizon roll runs (it materialises the new day and trims past starts and claims).
Hold hashes are deleted at the end (in real time they expire 24 h after their hold: the simulation runs in
minutes). Then the write-behind persister stores everything in PostgreSQL, and ``used_memory`` is read at
each stage:

1. the year in Redis as the engine kept it before item 9: every appointment hash, every stream entry (the
   notifier group of a deployment without `booking worker` pins the streams);
2. streams trimmed by what the running consumers need (the idle notifier no longer pins them);
3. and the appointment tidy at the end of the year (``APPOINTMENT_RETENTION_DAYS``, 90 by default): what ended
   more than 90 days before leaves Redis.

    python -m benchmarks.studies.retention_year --redis-url redis://127.0.0.1:6379/3 --database-name booking_bench_year

The Redis database is flushed first and left empty at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from typing import Any

import redis as redis_sync
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from engine import keys
from engine.model import Patient, Schedule, WeeklyWindow
from engine.service import BookingEngine
from engine.settings import Settings
from persistence import migrate
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.retention import AppointmentTidy

DAY = 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def used(r: redis_sync.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def memory_of(r: redis_sync.Redis, pattern: str, sample: int = 0) -> tuple[int, int]:
    """(keys matching, their bytes by MEMORY USAGE; with ``sample``, only that many keys are measured)."""
    n = total = 0
    for k in r.scan_iter(match=pattern, count=1000):
        n += 1
        if not sample or n <= sample:
            total += int(r.memory_usage(k, samples=0) or 0)
    return n, (total if not sample else round(total * n / max(1, min(n, sample))))


async def simulate(eng: BookingEngine, sim: list[float], args: argparse.Namespace, log: Any) -> dict[str, Any]:
    sched = Schedule(
        weekly=[WeeklyWindow(day=d, start="08:00", end="18:00") for d in WEEKDAYS],  # type: ignore[arg-type]
        slot_step_minutes=30,
        horizon_days=90,
    )
    prs: list[tuple[str, str]] = []  # (practitioner, visit type)
    for i in range(args.practices):
        p = await eng.create_practice(f"Practice {i}", "Europe/Paris")
        vt = await eng.add_visit_type(p.id, "Consultation", 30)
        for j in range(args.practitioners):
            pr = await eng.add_practitioner(p.id, f"Dr {i}.{j}")
            await eng.put_schedule(pr.id, sched)
            prs.append((pr.id, vt.id))
    patient = Patient(name="Simulated Patient", email="patient@example.org", phone="+33 1 23 45 67 89")
    booked = 0

    async def book_day(pr: str, vt: str, day_start: int) -> int:
        pid = pr.split(".")[0]
        starts = await eng.redis.zrangebyscore(keys.base(pid, pr, vt), day_start, day_start + DAY - 1)
        n = 0
        for s in starts[: args.per_day]:
            when = dt.datetime.fromtimestamp(int(s), dt.timezone.utc)
            hold, _ = await eng.hold(pr, vt, when)
            await eng.book(hold.id, patient)
            n += 1
        return n

    t = time.time()
    first = sim[0]
    for d in range(args.days):
        sim[0] = first + d * DAY
        await eng.roll_horizon()
        tomorrow = int(sim[0]) + DAY
        if dt.datetime.fromtimestamp(tomorrow, dt.timezone.utc).weekday() < 5:
            booked += sum(await asyncio.gather(*(book_day(pr, vt, tomorrow) for pr, vt in prs)))
        if d % 30 == 29:
            log(f"  day {d + 1}: {booked} bookings ({time.time() - t:.0f} s)")
    return {"practitioners": len(prs), "bookings": booked, "simulated_days": args.days, "seconds": time.time() - t}


def fresh_database(admin_url: str, name: str) -> Engine:
    """Drop and create the PostgreSQL database ``name``, migrated to the current schema."""
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    db = make_engine(admin_url.rsplit("/", 1)[0] + "/" + name)
    migrate.upgrade(db)
    return db


def run(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    r = redis_sync.Redis.from_url(args.redis_url)
    r.flushdb()
    db = fresh_database(args.pg_admin_url, args.database_name)
    empty = used(r)
    day0 = (int(time.time()) // DAY + 1) * DAY
    sim = [float(day0)]
    settings = Settings(redis_url=args.redis_url, audit_searches=False)

    async def go() -> dict[str, Any]:
        ar = aioredis.Redis.from_url(args.redis_url)
        try:
            return await simulate(BookingEngine(ar, settings, clock=lambda: sim[0]), sim, args, log)
        finally:
            await ar.aclose()

    out: dict[str, Any] = asyncio.run(go())
    holds = [k for k in r.scan_iter(match=f"{keys.ROOT}:{{p:*}}:hold:*", count=1000)]
    for i in range(0, len(holds), 5000):
        r.unlink(*holds[i : i + 5000])
    n_appt, appt_bytes = memory_of(r, keys.appointment_pattern(), sample=2000)
    n_streams, stream_bytes = memory_of(r, f"{keys.ROOT}:{{p:*}}:events")
    _, base_bytes = memory_of(r, f"{keys.ROOT}:{{p:*}}:base:*")
    _, claim_bytes = memory_of(r, f"{keys.ROOT}:{{p:*}}:claims:*")
    stage1 = used(r)
    log(f"  storing {out['bookings']} bookings in PostgreSQL")
    keep = Persister(r, db, consumer="bench-year", retention_ms=10**15, batch=2000)  # stores, trims nothing
    stored = keep.drain()
    trimmer = Persister(r, db, consumer="bench-year", clock=lambda: time.time() + 7200)  # a little later
    trimmer.refresh_streams(force=True)
    trimmed = trimmer.trim()
    _, stream_after = memory_of(r, f"{keys.ROOT}:{{p:*}}:events")
    stage2 = used(r)
    tidy = AppointmentTidy(r, db, args.retention_days).run(now_s=sim[0] + DAY)
    n_left, appt_left = memory_of(r, keys.appointment_pattern())
    stage3 = used(r)
    pd = out["practitioners"] * 91  # each practitioner's base covers the 90-day horizon and today
    out.update(
        {
            "events_stored": stored,
            "events_trimmed": trimmed,
            "retention_days": args.retention_days,
            "appointments_removed_by_tidy": tidy.removed,
            "appointments_kept_in_redis": n_left,
            "bytes_per_appointment_hash": round(appt_bytes / max(1, n_appt)),
            "stream_bytes_per_booking": round(stream_bytes / max(1, out["bookings"])),
            "streams": n_streams,
            "base_bytes_per_practitioner_day": round(base_bytes / pd),
            "claims_bytes_per_practitioner_day": round(claim_bytes / pd),
            "used_memory_empty_mb": round(empty / 2**20, 1),
            "used_memory_year_without_retention_mb": round(stage1 / 2**20, 1),
            "used_memory_streams_trimmed_mb": round(stage2 / 2**20, 1),
            "used_memory_with_retention_mb": round(stage3 / 2**20, 1),
            "stream_bytes_before_after_trim": [stream_bytes, stream_after],
            "appointment_bytes_before_after_tidy": [appt_bytes, appt_left],
        }
    )
    r.flushdb()
    r.close()
    db.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", required=True, help="a Redis database this run may flush")
    ap.add_argument("--pg-admin-url", default="postgresql+psycopg://root@127.0.0.1/postgres")
    ap.add_argument("--database-name", default="booking_bench_year", help="PostgreSQL database (re-created)")
    ap.add_argument("--practices", type=int, default=4)
    ap.add_argument("--practitioners", type=int, default=5, help="per practice")
    ap.add_argument("--per-day", type=int, default=16, help="bookings per practitioner and working day (of 20)")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--retention-days", type=int, default=90)
    ap.add_argument("--out", default="retention-year.json")
    args = ap.parse_args(argv)
    result = run(args)
    rows = [
        ("bookings in the simulated year", f"{result['bookings']:,}"),
        ("appointment hash", f"{result['bytes_per_appointment_hash']} B"),
        ("stream entries per booking (hold + book)", f"{result['stream_bytes_per_booking']} B"),
        ("base zset per practitioner-day", f"{result['base_bytes_per_practitioner_day']} B"),
        ("claims zset per practitioner-day", f"{result['claims_bytes_per_practitioner_day']} B"),
        ("used_memory, empty", f"{result['used_memory_empty_mb']} MB"),
        ("used_memory after the year, before item 9", f"{result['used_memory_year_without_retention_mb']} MB"),
        ("... streams trimmed (no worker running)", f"{result['used_memory_streams_trimmed_mb']} MB"),
        (f"... and {result['retention_days']}-day retention", f"{result['used_memory_with_retention_mb']} MB"),
    ]
    for name, value in rows:
        print(f"{name:<48} {value:>12}")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
