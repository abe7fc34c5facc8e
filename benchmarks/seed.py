"""Seed realistic data through the HTTP API (the same calls for the engine and the comparator).

Many practices in several time zones, several practitioners each with their own weekly hours, two visit
lengths (30 and 45 minutes, slot step 15: claims overlap partially), a 90-day horizon, and a few bookings
per practitioner made through hold + book. One practitioner of the first practice is kept free of bookings:
the hotslot scenario fights for four of its slots.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.dataset import Dataset, HotSpot, PracticeData, hot_starts
from benchmarks.httpclient import Client

ZONES = (
    "Europe/Paris",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Tokyo",
    "America/Sao_Paulo",
)
DAYS = ("mon", "tue", "wed", "thu", "fri")


def weekly(i: int) -> list[dict[str, str]]:
    """Practitioner i's hours: mornings and afternoons, shifted by one hour for odd i, Saturdays for some."""
    if i % 2 == 0:
        out = [{"day": d, "start": s, "end": e} for d in DAYS for s, e in (("08:00", "12:00"), ("13:00", "17:00"))]
    else:
        out = [{"day": d, "start": s, "end": e} for d in DAYS for s, e in (("09:00", "13:00"), ("14:00", "18:00"))]
    if i % 3 == 1:
        out.append({"day": "sat", "start": "09:00", "end": "12:00"})
    return out


class Seeder:
    def __init__(self, base: str, token: str | None, log: Any = print) -> None:
        self.base, self.token, self.log = base, token, log
        self.schedule_retries = 0

    async def _ok(self, c: Client, method: str, path: str, body: Any, want: int) -> Any:
        for _ in range(5):
            status, out = await c.call(method, path, body)
            if status == 409 and isinstance(out, dict) and out.get("code") == "schedule_changed":
                self.schedule_retries += 1  # "retry", says the engine: a concurrent change won
                continue
            break
        if status != want:
            raise RuntimeError(f"seeding: {method} {path} answered {status}: {out}")
        return out

    async def practice(self, c: Client, i: int, practitioners: int, horizon: int) -> PracticeData:
        tz = ZONES[i % len(ZONES)]
        p = await self._ok(c, "POST", "/v1/practices", {"name": f"Practice {i}", "timezone": tz}, 201)
        prs = [
            (await self._ok(c, "POST", f"/v1/practices/{p['id']}/practitioners", {"name": f"Dr {i}.{k}"}, 201))["id"]
            for k in range(practitioners)
        ]
        vts = []
        for minutes in (30, 45):
            v = await self._ok(
                c,
                "POST",
                f"/v1/practices/{p['id']}/visit-types",
                {"name": f"{minutes} min", "duration_minutes": minutes},
                201,
            )
            vts.append((v["id"], minutes))
        for k, pr in enumerate(prs):
            body = {"weekly": weekly(i + k), "slot_step_minutes": 15, "horizon_days": horizon, "min_notice_minutes": 0}
            await self._ok(c, "PUT", f"/v1/practitioners/{pr}/schedule", body, 200)
        return PracticeData(id=p["id"], timezone=tz, practitioners=prs, visit_types=vts)

    async def prebook(
        self, c: Client, p: PracticeData, first: dt.date, days: int, per: int, rng: random.Random, skip: str | None
    ) -> int:
        """About ``per`` bookings per practitioner on random slots (hold + book, 409s skipped)."""
        booked = 0
        tz = ZoneInfo(p.timezone)
        for pr in p.practitioners:
            if pr == skip:
                continue
            for _ in range(per):
                day = first + dt.timedelta(days=rng.randrange(days))
                start = dt.datetime(
                    day.year, day.month, day.day, rng.randint(9, 11), rng.choice((0, 15, 30)), tzinfo=tz
                )
                vt = rng.choice(p.visit_types)[0]
                st, h = await c.call(
                    "POST", "/v1/holds", {"practitioner_id": pr, "visit_type_id": vt, "start": start.isoformat()}
                )
                if st != 201:
                    continue
                n = rng.randrange(10**6)
                st, _ = await c.call(
                    "POST",
                    "/v1/appointments",
                    {"hold_id": h["id"], "patient": {"name": f"Seed {n}", "email": f"s{n}@example.org"}},
                )
                booked += st == 201
        return booked

    async def run(
        self, practices: int, practitioners: int, horizon: int, prebook: int, search_days: int, concurrency: int = 16
    ) -> Dataset:
        t0 = time.time()
        first = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
        search_days = min(search_days, horizon - 3)
        c = Client(self.base, self.token, size=concurrency)
        sem = asyncio.Semaphore(concurrency)
        done = 0

        async def one(i: int) -> PracticeData:
            nonlocal done
            async with sem:
                out = await self.practice(c, i, practitioners, horizon)
                done += 1
                if done % max(1, practices // 10) == 0 or done == practices:
                    self.log(f"    seeded {done}/{practices} practices ({time.time() - t0:.0f}s)")
                return out

        data = list(await asyncio.gather(*(one(i) for i in range(practices))))
        hot_practice = data[0]
        hot = HotSpot(
            practice_id=hot_practice.id,
            practitioner_id=hot_practice.practitioners[0],
            visit_types=[v for v, _ in hot_practice.visit_types],
            starts=hot_starts(hot_practice, first, 4),
        )
        if prebook:
            rng = random.Random(7)

            async def book_some(p: PracticeData) -> int:
                async with sem:
                    return await self.prebook(c, p, first, search_days, prebook, rng, hot.practitioner_id)

            n = sum(await asyncio.gather(*(book_some(p) for p in data)))
            self.log(f"    pre-booked {n} appointments ({time.time() - t0:.0f}s)")
        c.close()
        if c.retries or self.schedule_retries:
            self.log(
                f"    note: {c.retries} request(s) resent after a connection failed, "
                f"{self.schedule_retries} schedule PUT(s) retried after 409 schedule_changed"
            )
        return Dataset(practices=data, first_date=first.isoformat(), search_days=search_days, hot=hot)


def seed(
    base: str,
    token: str | None,
    *,
    practices: int,
    practitioners: int,
    horizon: int,
    prebook: int,
    search_days: int,
    log: Any = print,
) -> Dataset:
    import uvloop

    return uvloop.run(Seeder(base, token, log).run(practices, practitioners, horizon, prebook, search_days))
