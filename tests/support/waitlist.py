"""A practice on the real Redis, driven through the engine with a clock the tests move, for the waitlist tests;
and the replay of a practice's stream that checks invariant 11 (exclusive and fair offers)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from engine import events as ev
from engine import keys, timeutil
from engine.model import Patient, Practice, Practitioner, Schedule, VisitType, WaitlistRequest, WeeklyWindow
from engine.service import BookingEngine
from engine.settings import Settings
from engine.waitlist import Entry
from tests.support.clock import Clock

NOW = 1_900_000_000.0  # 2030-03-17 (a Sunday), moved by the tests through the engine's clock
TZ = "Europe/Berlin"
PATIENT = Patient(name="Ada Lovelace", email="ada@example.org")


class World:
    def __init__(self, eng: BookingEngine, clock: Clock, practice: Practice, prs: list[Practitioner],
                 vts: dict[int, VisitType]) -> None:  # fmt: skip
        self.eng, self.clock, self.practice, self.prs, self.vts = eng, clock, practice, prs, vts
        self.r = eng.redis

    @property
    def pid(self) -> str:
        return self.practice.id

    @property
    def tomorrow(self) -> dt.date:
        return timeutil.local_date_of(int(self.clock.now), timeutil.zone(TZ)) + dt.timedelta(days=1)

    def at(self, day: dt.date, hhmm: str) -> int:
        return timeutil.wall_to_epoch(day, timeutil.parse_hhmm(hhmm), timeutil.zone(TZ), is_end=False)

    def instant(self, epoch: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(epoch, dt.UTC)

    async def book(self, start: int, pr: int = 0, minutes: int = 30) -> str:
        hold, _ = await self.eng.hold(self.prs[pr].id, self.vts[minutes].id, self.instant(start))
        appt, _ = await self.eng.book(hold.id, PATIENT)
        return appt.id

    async def join(self, minutes: int = 30, pr: int | None = None, **kw: Any) -> Entry:
        day = kw.pop("day", self.tomorrow)
        req = WaitlistRequest(
            visit_type_id=self.vts[minutes].id,
            practitioner_id=self.prs[pr].id if pr is not None else None,
            from_date=kw.pop("from_date", day),
            to_date=kw.pop("to_date", day),
            patient=Patient(name=kw.pop("name", "Pat"), email="pat@example.org"),
            **kw,
        )
        return await self.eng.join_waitlist(self.pid, req)

    async def entry(self, entry_id: str) -> Entry:
        return (await self.eng.get_waitlist_entry(entry_id))[0]

    async def free(self, day: dt.date, minutes: int = 30, pr: int = 0) -> list[int]:
        _, found = await self.eng.search(self.pid, day, 1, self.vts[minutes].id, self.prs[pr].id)
        return [s.start for s in found.slots()]

    async def events(self) -> list[ev.Event]:
        return [ev.from_stream(i, f) for i, f in await self.r.xrange(keys.events(self.pid))]

    async def sweep(self) -> int:
        return await self.eng.expire_due_holds()


def run(redis_url: str, body: Callable[[World], Awaitable[None]], offer_seconds: int = 900, durations: tuple[int, ...] = (30, 15),
        practitioners: int = 2, windows: tuple[str, str] = ("08:00", "18:00"), step: int = 15,
        caps: tuple[int, int] | None = None, horizon_days: int = 10) -> None:  # fmt: skip
    """Run one test body against a fresh practice on the Redis database ``redis_url`` (flushed first; a test's
    ``redis_db``), 08:00-18:00 every day, 60 minutes of notice, 10 days;
    ``caps``: the waitlist's (per practice, per client) caps on live entries (default: the settings')."""

    async def main() -> None:
        r = aioredis.Redis.from_url(redis_url)
        await r.flushdb()
        clock = Clock(NOW)
        capped = {"waitlist_max_per_practice": caps[0], "waitlist_max_per_client": caps[1]} if caps else {}
        settings = Settings(redis_url=redis_url, waitlist_offer_seconds=offer_seconds, **capped)
        eng = BookingEngine(r, settings, clock)
        try:
            practice = await eng.create_practice("Waitlist", TZ)
            prs = [await eng.add_practitioner(practice.id, f"Dr {i}") for i in range(practitioners)]
            vts = {d: await eng.add_visit_type(practice.id, f"{d} min", d) for d in durations}
            week = [WeeklyWindow(d, *windows) for d in timeutil.WEEKDAYS]
            for pr in prs:
                await eng.put_schedule(
                    pr.id,
                    Schedule(weekly=week, horizon_days=horizon_days, min_notice_minutes=60, slot_step_minutes=step),
                )
            await body(World(eng, clock, practice, prs, vts))
        finally:
            await r.aclose()

    asyncio.run(main())


def check_offers(decoded: list[ev.Event], durations: dict[str, int]) -> int:
    """Replay a practice's stream and check invariant 11 at every offer: the entry was waiting and held no other
    offer; the interval was never offered to it before and overlaps no live claim; no earlier-joined entry that
    was waiting then, matched the practitioner and visit type and fitted the interval went without. Returns the
    number of offers checked."""
    entries: dict[str, ev.WaitlistRecord] = {}
    claims: dict[str, tuple[str, int, int]] = {}  # hold or appointment id -> (practitioner, start, end)
    seen: set[tuple[str, str, int, int]] = set()
    offers = 0
    excluded = ""  # the entry that just gave an interval up: the offers of that same step skip it
    for e in decoded:
        if isinstance(e, ev.WaitlistDeclined | ev.WaitlistLapsed | ev.WaitlistLeft):
            excluded = e.data.id
        elif not isinstance(e, ev.WaitlistOffered | ev.HoldReleased | ev.HoldExpired):
            excluded = ""
        if isinstance(e, ev.Held):
            claims[e.hold_id] = (e.practitioner_id, e.detail.start, e.detail.end)
        elif isinstance(e, ev.HoldReleased | ev.HoldExpired):
            claims.pop(e.hold_id, None)
        elif isinstance(e, ev.AppointmentBooked):
            claims.pop(e.hold_id, None)
            claims[e.appointment_id] = (e.practitioner_id, e.detail.start, e.detail.end)
        elif isinstance(e, ev.AppointmentRescheduled):
            claims.pop(e.hold_id, None)
            claims[e.appointment_id] = (e.practitioner_id, e.detail.start, e.detail.end)
        elif isinstance(e, ev.AppointmentCancelled):
            claims.pop(e.appointment_id, None)
        elif isinstance(e, ev.WaitlistOffered):
            offers += 1
            before = entries[e.data.id]
            assert before.status == "waiting" and before.offer is None, (before.status, e.data.id)
            pr, s, t = e.practitioner_id, e.detail.start or 0, e.detail.end or 0
            assert (e.data.id, pr, s, t) not in seen, "an interval offered twice to one entry"
            seen.add((e.data.id, pr, s, t))
            for cid, (cpr, cs, ce) in claims.items():
                assert not (cpr == pr and cs < t and s < ce), f"offer {e.hold_id} overlaps claim {cid}"
            for other in entries.values():
                if other.order >= before.order or other.status != "waiting" or other.id == excluded:
                    continue
                fits = any(a <= s and t <= b for a, b in other.spans)
                same = other.visit_type_id == before.visit_type_id and durations[other.visit_type_id] == t - s
                if fits and same and other.practitioner_id in (None, pr) and f"{pr}|{s}|{t}" not in other.had:
                    raise AssertionError(f"entry {other.id} joined earlier, waited and fitted {pr} {s}-{t}")
            claims[e.hold_id] = (pr, s, t)
        if isinstance(e, ev.WaitlistDeclined | ev.WaitlistLapsed | ev.WaitlistLeft):
            claims.pop(e.hold_id, None) if e.detail.start is not None else None
        if isinstance(e, ev.WaitlistAccepted):
            claims.pop(e.hold_id, None)
        if isinstance(e, ev.WaitlistJoined | ev.WaitlistOffered | ev.WaitlistAccepted | ev.WaitlistDeclined
                      | ev.WaitlistLapsed | ev.WaitlistLeft):  # fmt: skip
            entries[e.data.id] = e.data
    return offers
