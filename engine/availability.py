"""Schedules and the materialised availability they produce: day by day slot starts, horizon rolls, conflicts."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable

import msgspec

from engine import errors, keys, limits, resources, scripts, timeutil
from engine.catalog import Catalog
from engine.codec import encoder, text
from engine.context import Runtime
from engine.model import SYSTEM, Ctx, Practice, Schedule, VisitType, stored_schedule
from engine.offers import Offers


class ScheduleState(msgspec.Struct, frozen=True):
    schedule: Schedule
    gen: str
    until: int  # end of the materialised days (epoch seconds; 0: none yet)


class BookedClaim(msgspec.Struct, frozen=True):
    """A booked appointment as its practitioner's claims zset holds it: the visit and its occupation."""

    id: str
    visit_type_id: str
    start: int
    end: int
    occ_start: int
    occ_end: int


def _widened(closures: list[tuple[int, int]], vt: VisitType) -> list[tuple[int, int]]:
    """Closures as a visit's start sees them: its buffers may reach outside the window, never into a closure, so
    a closure keeps out the starts whose [start - before, end + after] touches it."""
    before, after = vt.buffers_s
    if not before and not after:
        return closures
    return [(c_start - after, c_end + before) for c_start, c_end in closures]


def dates(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


class Availability:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        self.offers = Offers(rt, catalog)

    def today(self, practice: Practice) -> dt.date:
        return timeutil.local_date_of(int(self.rt.clock()), timeutil.zone(practice.timezone))

    async def schedule_state(self, pid: str, practitioner_id: str) -> ScheduleState | None:
        raw, gen, until = await self.rt.redis.hmget(keys.schedule(pid, practitioner_id), "json", "gen", "until")
        if raw is None:
            return None
        return ScheduleState(stored_schedule(raw), text(gen), int(until or 0))

    async def get_schedule(self, practitioner_id: str) -> Schedule:
        pr = await self.catalog.get_practitioner(practitioner_id)
        state = await self.schedule_state(pr.practice_id, pr.id)
        if state is None:
            raise errors.NotFoundError("schedule of practitioner", practitioner_id)
        return state.schedule

    async def put_schedule(self, practitioner_id: str, schedule: Schedule, ctx: Ctx = SYSTEM) -> list[str]:
        """Store the schedule, recompute the horizon day by day, and return the conflicting bookings."""
        pr = await self.catalog.get_practitioner(practitioner_id)
        pid = pr.practice_id
        practice = await self.catalog.get_practice(pid)
        old = await self.schedule_state(pid, pr.id)
        detail = {
            "windows": len(schedule.weekly),
            "closures": len(schedule.closures),
            "slot_step_minutes": schedule.slot_step_minutes,
            "horizon_days": schedule.horizon_days,
            "min_notice_minutes": schedule.min_notice_minutes,
        }
        gen = await scripts.schedule(
            self.rt.lua,
            now_ms=self.rt.now_ms(),
            practice_id=pid,
            practitioner_id=pr.id,
            schedule_json=encoder.encode(schedule),
            min_notice_s=schedule.min_notice_minutes * 60,
            horizon_s=schedule.horizon_days * 86400,
            detail=detail,
            ctx=ctx,
        )
        tz = timeutil.zone(practice.timezone)
        today = self.today(practice)
        last = today + dt.timedelta(days=schedule.horizon_days)
        if old is not None and old.until:
            last = max(last, timeutil.local_date_of(old.until - 1, tz))  # clear days the old horizon reached
        vts = await self.catalog.list_visit_types(pid)
        horizon_end = today + dt.timedelta(days=schedule.horizon_days)
        await self.apply_days(practice, pr.id, schedule, vts, dates(today, last), str(gen), horizon_end=horizon_end)
        return await self.conflicts(practice, pr.id, schedule)

    async def restore_schedule(self, practice: Practice, practitioner_id: str, schedule: Schedule) -> bool:
        """Put back a schedule Redis lacks (a materialised one in Redis is the live one and is never replaced:
        the database may lag behind a change still being written) and recompute its horizon."""
        gen = await scripts.schedule(
            self.rt.lua,
            now_ms=self.rt.now_ms(),
            practice_id=practice.id,
            practitioner_id=practitioner_id,
            schedule_json=encoder.encode(schedule),
            min_notice_s=schedule.min_notice_minutes * 60,
            horizon_s=schedule.horizon_days * 86400,
            detail={},
            ctx=SYSTEM,
            restore=True,
        )
        if not gen:
            return False
        today = self.today(practice)
        days = dates(today, today + dt.timedelta(days=schedule.horizon_days))
        vts = await self.catalog.list_visit_types(practice.id)
        await self.apply_days(practice, practitioner_id, schedule, vts, days, str(gen))
        return True

    async def apply_days(
        self,
        practice: Practice,
        practitioner_id: str,
        schedule: Schedule,
        vts: list[VisitType],
        days: Iterable[dt.date],
        gen: str,
        horizon_end: dt.date | None = None,
    ) -> None:
        # Slot generation is CPU work linear in the slots (closures merged once, each day checked only against
        # the closures that reach it), done in a worker thread so the event loop answers every other request of
        # this process meanwhile (issue 22: a 730-day horizon with hundreds of closures stalled /healthz 5 s).
        plans = await asyncio.to_thread(_day_plans, practice, schedule, vts, list(days), horizon_end)
        for attempt in range(3):  # the starts a day adds go to waiting entries first (a kit per day)
            kits = [await self.offers.kit(practice.id, practitioner_id, fresh=attempt > 0, others=False) for _ in plans]
            try:
                await scripts.apply_day(
                    self.rt.lua,
                    practice_id=practice.id,
                    practitioner_id=practitioner_id,
                    visit_type_ids=[vt.id for vt in vts],
                    gen=gen,
                    days=plans,
                    kits=kits,
                    now_ms=self.rt.now_ms(),
                )
                return
            except errors.OfferKitError:
                if attempt == 2:
                    raise

    async def offer_visit_type(self, practice_id: str, vt: VisitType) -> None:
        """Offer a new visit type on every practitioner's already materialised days."""
        practice = await self.catalog.get_practice(practice_id)
        tz = timeutil.zone(practice.timezone)
        for pr in await self.catalog.list_practitioners(practice_id):
            state = await self.schedule_state(practice_id, pr.id)
            if state is not None and state.until:
                days = dates(self.today(practice), timeutil.local_date_of(state.until - 1, tz))
                try:
                    await self.apply_days(practice, pr.id, state.schedule, [vt], days, state.gen)
                except errors.StaleScheduleError:
                    pass  # the concurrent schedule change recomputes every visit type

    async def booked_claims(self, pid: str, practitioner_id: str) -> list[BookedClaim]:
        """The booked appointments of a practitioner that have not ended, with their visit and occupation."""
        now = int(self.rt.clock())
        members = await self.rt.redis.zrangebyscore(
            keys.claims(pid, practitioner_id), now - limits.MAX_OCCUPATION_S, "+inf", withscores=True
        )
        booked = []
        for member, score in members:
            kind, ident, last, _ = text(member).split("|")
            if kind == "b":
                booked.append((ident, int(score), int(last)))
        if not booked:
            return []
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            for ident, _, _ in booked:
                pipe.hmget(keys.appointment(pid, ident), "start", "end", "visit_type_id")
            rows = await pipe.execute()
        out = []
        for (ident, occ_start, occ_end), (start, end, vt) in zip(booked, rows, strict=True):
            visit_start, visit_end = int(start or occ_start), int(end or occ_end)
            if visit_end > now:
                out.append(BookedClaim(ident, text(vt or b""), visit_start, visit_end, occ_start, occ_end))
        return out

    async def conflicts(self, practice: Practice, practitioner_id: str, schedule: Schedule) -> list[str]:
        """Booked appointments the schedule no longer offers: the visit outside every window, or its occupation
        (buffers included) reaching into a closure."""
        closures = schedule.closure_spans()
        out = []
        for c in await self.booked_claims(practice.id, practitioner_id):
            if not schedule.covers(c.start, c.end, practice.timezone) or any(
                c.occ_start < c_end and c.occ_end > c_start for c_start, c_end in closures
            ):
                out.append(c.id)
        return out

    async def rule_conflicts(self, vt: VisitType) -> list[str]:
        """Booked appointments of ``vt`` that its current rules conflict with: the occupation its buffers now give
        overlaps another live claim's occupation or reaches into a closure, a resource it now needs is closed or
        claimed by another claim over the visit, or its practitioner has more than
        ``max_per_day`` of them on its local date (the ones after the first ``max_per_day``, by start)."""
        practice = await self.catalog.get_practice(vt.practice_id)
        tz = timeutil.zone(practice.timezone)
        before, after = vt.buffers_s
        now_ms = self.rt.now_ms()
        out: list[str] = []
        booked = {
            pr.id: [c for c in await self.booked_claims(vt.practice_id, pr.id) if c.visit_type_id == vt.id]
            for pr in await self.catalog.list_practitioners(vt.practice_id)
        }
        rooms = await resources.occupations(self.rt, vt.practice_id, vt.resource_ids, now_ms)
        if vt.resource_ids:  # every booked visit of this type now needs the resources too, whoever sees it
            rooms += [(c.id, c.start, c.end) for claims in booked.values() for c in claims]
        for pr_id, mine in booked.items():
            state = await self.schedule_state(vt.practice_id, pr_id)
            closures = state.schedule.closure_spans() if state is not None else []
            if not mine:
                continue
            others = await self._live_occupations(vt.practice_id, pr_id, now_ms)
            per_day: dict[dt.date, int] = {}
            for c in sorted(mine, key=lambda c: (c.start, c.id)):
                lo, hi = c.start - before, c.end + after
                clash = any(lo < e and hi > s for ident, s, e in others if ident != c.id)
                closed = any(lo < c_end and hi > c_start for c_start, c_end in closures)
                closed = closed or any(c.start < e and c.end > s for ident, s, e in rooms if ident != c.id)
                day = timeutil.local_date_of(c.start, tz)
                per_day[day] = per_day.get(day, 0) + 1
                over = vt.max_per_day is not None and per_day[day] > vt.max_per_day
                if clash or closed or over:
                    out.append(c.id)
        return sorted(set(out))

    async def _live_occupations(self, pid: str, practitioner_id: str, now_ms: int) -> list[tuple[str, int, int]]:
        now = now_ms // 1000
        members = await self.rt.redis.zrangebyscore(
            keys.claims(pid, practitioner_id), now - limits.MAX_OCCUPATION_S, "+inf", withscores=True
        )
        out = []
        for member, score in members:
            kind, ident, occ_end, exp = text(member).split("|")
            if kind == "b" or int(exp) > now_ms:
                out.append((ident, int(score), int(occ_end)))
        return out

    async def roll_horizon(self) -> int:
        """Extend every schedule's materialised days up to today + horizon; trim days long past."""
        rolled = 0
        for raw_pid in await self.rt.redis.smembers(keys.PRACTICES):
            pid = text(raw_pid)
            try:
                practice = await self.catalog.get_practice(pid)
            except errors.NotFoundError:
                continue
            tz = timeutil.zone(practice.timezone)
            today = self.today(practice)
            vts = await self.catalog.list_visit_types(pid)
            for pr in await self.catalog.list_practitioners(pid):
                state = await self.schedule_state(pid, pr.id)
                if state is None:
                    continue
                first = timeutil.local_date_of(state.until, tz) if state.until else today
                last = today + dt.timedelta(days=state.schedule.horizon_days)
                if first <= last:
                    try:
                        days = dates(max(first, today), last)
                        await self.apply_days(practice, pr.id, state.schedule, vts, days, state.gen)
                        rolled += 1
                    except errors.StaleScheduleError:
                        pass  # a schedule change is recomputing this practitioner right now
                await scripts.trim_past(
                    self.rt.lua,
                    practice_id=pid,
                    practitioner_id=pr.id,
                    visit_type_ids=[vt.id for vt in vts],
                    before=timeutil.day_bounds(today - dt.timedelta(days=1), tz)[0],
                    max_duration_s=limits.MAX_OCCUPATION_S,
                )
        return rolled


def _day_plans(
    practice: Practice, schedule: Schedule, vts: list[VisitType], days: list[dt.date], horizon_end: dt.date | None
) -> list[scripts.DayPlan]:
    tz = timeutil.zone(practice.timezone)
    closures = timeutil.merge_spans(schedule.closure_spans())
    # a visit's buffers may reach outside its window, never into a closure (_widened): look that much further
    longest = max((vt.duration_minutes * 60 + max(vt.buffers_s) for vt in vts), default=0)
    plans = []
    for day in days:
        start, end = timeutil.day_bounds(day, tz)
        windows = schedule.windows_for(day.weekday())
        near = timeutil.spans_within(closures, start - longest, end + longest)
        per_vt: list[list[int]] = []
        for vt in vts:
            if horizon_end is not None and day > horizon_end:
                per_vt.append([])
            else:
                step, dur = schedule.slot_step_minutes * 60, vt.duration_minutes * 60
                per_vt.append(timeutil.day_slots(day, windows, tz, step, dur, _widened(near, vt)))
        plans.append(scripts.DayPlan(start, end, per_vt))
    return plans
