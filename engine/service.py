"""BookingEngine: the booking operations, each one Redis round trip to read and one atomic script to write."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from engine import errors, ids, keys, timeutil
from engine.model import Appointment, Hold, Patient, Practice, Practitioner, Schedule, Slot, VisitType
from engine.scripts import Scripts
from engine.settings import Settings

_enc = msgspec.json.Encoder()
SEARCH_FIRST_DATE = dt.date(1971, 1, 1)
MAX_DURATION_S = 480 * 60  # the longest visit type; the Lua overlap look-ups rely on it
SEARCH_CONTEXT_TTL_S = 1.0  # how long a process reuses a practice's search context
SEARCH_LAST_DATE = dt.date(9000, 1, 1)
Render = Callable[[Any, str], bytes]  # (record, practice time zone) -> response body


class Ctx(msgspec.Struct, frozen=True):
    """Who asks, and the request id that ties the audit row to the HTTP request."""

    actor: str = "system"
    request_id: str = ""


SYSTEM = Ctx()


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: bytes | str | None, kind: type[Any], what: str, ident: str) -> Any:
    if raw is None:
        raise errors.NotFoundError(what, ident)
    return msgspec.json.decode(raw, type=kind)


def patient_ref(practice_id: str, patient: Patient) -> str:
    """A pseudonymous patient id for the audit trail (no name, e-mail or phone leaves the record)."""
    return hashlib.sha256(f"{practice_id}:{patient.email.strip().lower()}".encode()).hexdigest()[:20]


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class SearchResult(msgspec.Struct, frozen=True):
    """Free slots, sorted by start then practitioner id, packed as ``start * len(practitioner_ids) + index``
    (one integer sort instead of thousands of objects; see ``slots()`` for the plain form)."""

    practitioner_ids: list[str]
    duration_s: int
    packed: list[int]

    def slots(self) -> list[Slot]:
        n = len(self.practitioner_ids)
        return [Slot(self.practitioner_ids[v % n], v // n, v // n + self.duration_s) for v in self.packed]

    def __len__(self) -> int:
        return len(self.packed)


def _order(found: list[list[int]], n: int) -> list[int]:
    """Merge the per-practitioner start lists (practitioner ids sorted) into one sorted packed list."""
    packed = [s * n + i for i, starts in enumerate(found) for s in starts]
    packed.sort()
    return packed


class BookingEngine:
    def __init__(self, redis: Any, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self.scripts = Scripts(redis)
        self._practices: dict[str, Practice] = {}
        self._search_cache: dict[tuple[str, str, str | None], tuple[float, Practice, VisitType, list[str]]] = {}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ----------------------------------------------------------------- setup
    async def _put_entity(self, pid: str, key: str, field: str, record: Any, kind: str, ctx: Ctx) -> None:
        await self.scripts["put_entity"](
            keys=[key, keys.events(pid), keys.audit(pid)],
            args=[self.now_ms(), field, _enc.encode(record), kind, ctx.actor, ctx.request_id, pid],
        )

    async def create_practice(self, name: str, timezone: str, ctx: Ctx = SYSTEM) -> Practice:
        try:
            timeutil.zone(timezone)
        except timeutil.UnknownTimeZoneError:
            raise errors.UnknownTimezoneError(f"{timezone!r} is not an IANA time zone") from None
        practice = Practice(id=ids.new_practice_id(), name=name, timezone=timezone)
        await self.redis.sadd(keys.PRACTICES, practice.id)  # first: loops skip ids without a record
        await self._put_entity(practice.id, keys.practice(practice.id), "record", practice, "practice", ctx)
        return practice

    async def get_practice(self, practice_id: str) -> Practice:
        if ids.practice_of(practice_id, "p") is None:
            raise errors.NotFoundError("practice", practice_id)
        raw = await self.redis.hget(keys.practice(practice_id), "record")
        return _decode(raw, Practice, "practice", practice_id)  # type: ignore[no-any-return]

    async def _practice(self, practice_id: str) -> Practice:
        """A practice record, kept per process: practices never change once created."""
        practice = self._practices.get(practice_id)
        if practice is None:
            practice = await self.get_practice(practice_id)
            if len(self._practices) > 100_000:
                self._practices.clear()
            self._practices[practice_id] = practice
        return practice

    async def add_practitioner(self, practice_id: str, name: str, ctx: Ctx = SYSTEM) -> Practitioner:
        await self.get_practice(practice_id)
        pr = Practitioner(id=ids.new_practitioner_id(practice_id), practice_id=practice_id, name=name)
        await self._put_entity(practice_id, keys.practitioners(practice_id), pr.id, pr, "practitioner", ctx)
        return pr

    async def list_practitioners(self, practice_id: str) -> list[Practitioner]:
        await self.get_practice(practice_id)
        raw = await self.redis.hvals(keys.practitioners(practice_id))
        return sorted((msgspec.json.decode(r, type=Practitioner) for r in raw), key=lambda p: p.id)

    async def get_practitioner(self, practitioner_id: str) -> Practitioner:
        pid = ids.practice_of(practitioner_id, "r")
        if pid is None:
            raise errors.NotFoundError("practitioner", practitioner_id)
        raw = await self.redis.hget(keys.practitioners(pid), practitioner_id)
        return _decode(raw, Practitioner, "practitioner", practitioner_id)  # type: ignore[no-any-return]

    async def add_visit_type(self, practice_id: str, name: str, minutes: int, ctx: Ctx = SYSTEM) -> VisitType:
        if not 5 <= minutes <= MAX_DURATION_S // 60:
            raise errors.InvalidRequestError("duration_minutes must be 5 to 480")
        practice = await self.get_practice(practice_id)
        vt = VisitType(
            id=ids.new_visit_type_id(practice_id), practice_id=practice_id, name=name, duration_minutes=minutes
        )
        await self._put_entity(practice_id, keys.visit_types(practice_id), vt.id, vt, "visit_type", ctx)
        # Offer the new visit type on every practitioner's already materialised days.
        for pr in await self.list_practitioners(practice_id):
            state = await self._schedule_state(practice_id, pr.id)
            if state is not None and state[2]:
                schedule, gen, until = state
                today = self._today(practice)
                days = self._dates(today, timeutil.local_date_of(until - 1, timeutil.zone(practice.timezone)))
                try:
                    await self._apply_days(practice, pr.id, schedule, [vt], days, gen)
                except errors.StaleScheduleError:
                    pass  # the concurrent schedule change recomputes every visit type
        return vt

    async def list_visit_types(self, practice_id: str) -> list[VisitType]:
        await self.get_practice(practice_id)
        raw = await self.redis.hvals(keys.visit_types(practice_id))
        return sorted((msgspec.json.decode(r, type=VisitType) for r in raw), key=lambda v: v.id)

    async def get_visit_type(self, visit_type_id: str) -> VisitType:
        pid = ids.practice_of(visit_type_id, "v")
        if pid is None:
            raise errors.NotFoundError("visit type", visit_type_id)
        raw = await self.redis.hget(keys.visit_types(pid), visit_type_id)
        return _decode(raw, VisitType, "visit type", visit_type_id)  # type: ignore[no-any-return]

    # ----------------------------------------------------------------- schedules
    def _today(self, practice: Practice) -> dt.date:
        return timeutil.local_date_of(int(self.clock()), timeutil.zone(practice.timezone))

    @staticmethod
    def _dates(first: dt.date, last: dt.date) -> list[dt.date]:
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    async def _schedule_state(self, pid: str, practitioner_id: str) -> tuple[Schedule, str, int] | None:
        raw, gen, until = await self.redis.hmget(keys.schedule(pid, practitioner_id), "json", "gen", "until")
        if raw is None:
            return None
        return msgspec.json.decode(raw, type=Schedule), _s(gen) or "", int(until or 0)

    async def get_schedule(self, practitioner_id: str) -> Schedule:
        pr = await self.get_practitioner(practitioner_id)
        state = await self._schedule_state(pr.practice_id, pr.id)
        if state is None:
            raise errors.NotFoundError("schedule of practitioner", practitioner_id)
        return state[0]

    async def put_schedule(self, practitioner_id: str, schedule: Schedule, ctx: Ctx = SYSTEM) -> list[str]:
        """Store the schedule, recompute the horizon day by day, and return the conflicting bookings."""
        pr = await self.get_practitioner(practitioner_id)
        pid = pr.practice_id
        practice = await self.get_practice(pid)
        old = await self._schedule_state(pid, pr.id)
        detail = {
            "windows": len(schedule.weekly),
            "closures": len(schedule.closures),
            "slot_step_minutes": schedule.slot_step_minutes,
            "horizon_days": schedule.horizon_days,
            "min_notice_minutes": schedule.min_notice_minutes,
        }
        gen = await self.scripts["put_schedule"](
            keys=[keys.schedule(pid, pr.id), keys.events(pid), keys.audit(pid)],
            args=[
                self.now_ms(),
                _enc.encode(schedule),
                schedule.min_notice_minutes * 60,
                schedule.horizon_days * 86400,
                pid,
                pr.id,
                ctx.actor,
                ctx.request_id,
                _enc.encode(detail),
            ],
        )
        tz = timeutil.zone(practice.timezone)
        today = self._today(practice)
        last = today + dt.timedelta(days=schedule.horizon_days)
        if old is not None and old[2]:
            last = max(last, timeutil.local_date_of(old[2] - 1, tz))  # clear days the old horizon reached
        vts = await self.list_visit_types(pid)
        await self._apply_days(
            practice,
            pr.id,
            schedule,
            vts,
            self._dates(today, last),
            str(gen),
            horizon_end=today + dt.timedelta(days=schedule.horizon_days),
        )
        return await self._conflicts(practice, pr.id, schedule)

    async def _apply_days(
        self,
        practice: Practice,
        practitioner_id: str,
        schedule: Schedule,
        vts: list[VisitType],
        days: Iterable[dt.date],
        gen: str,
        horizon_end: dt.date | None = None,
    ) -> None:
        pid = practice.id
        tz = timeutil.zone(practice.timezone)
        closures = schedule.closure_spans()
        sched_key = keys.schedule(pid, practitioner_id)
        base_keys = [keys.base(pid, practitioner_id, vt.id) for vt in vts]
        script = self.scripts["apply_day"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in days:
                start, end = timeutil.day_bounds(day, tz)
                args: list[Any] = [gen, start, end]
                windows = schedule.windows_for(day.weekday())
                for vt in vts:
                    if horizon_end is not None and day > horizon_end:
                        starts: list[int] = []
                    else:
                        starts = timeutil.day_slots(
                            day, windows, tz, schedule.slot_step_minutes * 60, vt.duration_minutes * 60, closures
                        )
                    args.append(len(starts))
                    args.extend(starts)
                await script(keys=[sched_key, *base_keys], args=args, client=pipe)
            results = await pipe.execute()
        if any(_s(r[0]) == "STALE" for r in results):
            raise errors.StaleScheduleError()

    async def _conflicts(self, practice: Practice, practitioner_id: str, schedule: Schedule) -> list[str]:
        now = int(self.clock())
        members = await self.redis.zrangebyscore(
            keys.claims(practice.id, practitioner_id), now - 28800, "+inf", withscores=True
        )
        out = []
        for member, score in members:
            kind, ident, end, _ = _s(member).split("|")  # type: ignore[union-attr]
            if kind == "b" and int(end) > now and not schedule.covers(int(score), int(end), practice.timezone):
                out.append(ident)
        return out

    async def roll_horizon(self) -> int:
        """Extend every schedule's materialised days up to today + horizon; trim days long past."""
        rolled = 0
        for raw_pid in await self.redis.smembers(keys.PRACTICES):
            pid = _s(raw_pid) or ""
            try:
                practice = await self.get_practice(pid)
            except errors.NotFoundError:
                continue
            tz = timeutil.zone(practice.timezone)
            today = self._today(practice)
            vts = await self.list_visit_types(pid)
            for pr in await self.list_practitioners(pid):
                state = await self._schedule_state(pid, pr.id)
                if state is None:
                    continue
                schedule, gen, until = state
                first = timeutil.local_date_of(until, tz) if until else today
                last = today + dt.timedelta(days=schedule.horizon_days)
                if first <= last:
                    try:
                        await self._apply_days(
                            practice, pr.id, schedule, vts, self._dates(max(first, today), last), gen
                        )
                        rolled += 1
                    except errors.StaleScheduleError:
                        pass  # a schedule change is recomputing this practitioner right now
                past = timeutil.day_bounds(today - dt.timedelta(days=1), tz)[0]
                for vt in vts:
                    await self.redis.zremrangebyscore(keys.base(pid, pr.id, vt.id), "-inf", f"({past}")
                # claims that started more than a day (plus the longest visit) ago can no longer overlap anything
                await self.redis.zremrangebyscore(keys.claims(pid, pr.id), "-inf", f"({past - MAX_DURATION_S}")
        return rolled

    # ----------------------------------------------------------------- search
    async def _search_context(
        self, practice_id: str, visit_type_id: str, practitioner_id: str | None
    ) -> tuple[Practice, VisitType, list[str]]:
        """The practice, visit type and practitioner ids a search needs. Practices and visit types never change
        once created and practitioners are only ever added, so each process keeps them for a second: most
        searches then cost a single Redis round trip (the search script)."""
        now = time.monotonic()
        cache_key = (practice_id, visit_type_id, practitioner_id)
        hit = self._search_cache.get(cache_key)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2], hit[3]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.practice(practice_id), "record")
            pipe.hget(keys.visit_types(practice_id), visit_type_id)
            if practitioner_id is None:
                pipe.hkeys(keys.practitioners(practice_id))
            else:
                pipe.hexists(keys.practitioners(practice_id), practitioner_id)
            raw_practice, raw_vt, prs = await pipe.execute()
        practice = _decode(raw_practice, Practice, "practice", practice_id)
        vt = _decode(raw_vt, VisitType, "visit type", visit_type_id)
        if practitioner_id is not None:
            if not prs:
                raise errors.NotFoundError("practitioner", practitioner_id)
            prac_ids = [practitioner_id]
        else:
            prac_ids = sorted(_s(p) or "" for p in prs)
        if len(self._search_cache) > 10_000:
            self._search_cache.clear()
        self._search_cache[cache_key] = (now + SEARCH_CONTEXT_TTL_S, practice, vt, prac_ids)
        return practice, vt, prac_ids

    async def search(
        self,
        practice_id: str,
        date: dt.date,
        days: int,
        visit_type_id: str,
        practitioner_id: str | None = None,
        ctx: Ctx = SYSTEM,
    ) -> tuple[Practice, SearchResult]:
        if ids.practice_of(practice_id, "p") is None:
            raise errors.NotFoundError("practice", practice_id)
        if not (SEARCH_FIRST_DATE <= date <= SEARCH_LAST_DATE):
            raise errors.InvalidRequestError(f"date must lie between {SEARCH_FIRST_DATE} and {SEARCH_LAST_DATE}")
        if not 1 <= days <= 31:
            raise errors.InvalidRequestError("days must be 1 to 31")
        practice, vt, prac_ids = await self._search_context(practice_id, visit_type_id, practitioner_id)
        tz = timeutil.zone(practice.timezone)
        lo = timeutil.day_bounds(date, tz)[0]
        hi = timeutil.day_bounds(date + dt.timedelta(days=days - 1), tz)[1]
        dur = vt.duration_minutes * 60
        script_keys = []
        for pr in prac_ids:
            script_keys += [
                keys.base(practice_id, pr, vt.id),
                keys.claims(practice_id, pr),
                keys.schedule(practice_id, pr),
            ]
        script_keys += [keys.events(practice_id), keys.audit(practice_id)]
        detail = {"date": date.isoformat(), "days": days, "visit_type_id": vt.id, "practitioner_id": practitioner_id}
        found = await self.scripts["search"](
            keys=script_keys,
            args=[
                self.now_ms(),
                lo,
                hi,
                dur,
                len(prac_ids),
                ctx.actor,
                ctx.request_id,
                practice_id,
                _enc.encode(detail),
                "1" if self.settings.audit_searches else "0",
            ],
        )
        return practice, SearchResult(prac_ids, dur, _order(found, len(prac_ids)))

    # ----------------------------------------------------------------- holds
    async def place_hold(
        self,
        practitioner_id: str,
        visit_type_id: str,
        start: dt.datetime,
        *,
        render: Render,
        ctx: Ctx = SYSTEM,
        idem_key: str | None = None,
        body_fp: str = "",
        hold_id: str | None = None,
    ) -> tuple[bytes, bool]:
        """Claim a hold; returns (the rendered Hold, whether this was an idempotent replay)."""
        pid = ids.practice_of(practitioner_id, "r")
        if pid is None:
            raise errors.NotFoundError("practitioner", practitioner_id)
        practice, vt, _ = await self._search_context(pid, visit_type_id, practitioner_id)
        begin = timeutil.to_epoch(start)
        if start.microsecond or start.second:
            raise errors.SlotUnavailableError("not_a_slot")
        now = self.now_ms()
        if not (now // 1000 - 86400 <= begin <= now // 1000 + 800 * 86400):  # beyond any horizon (730 days)
            raise errors.SlotUnavailableError("outside_any_horizon")
        hold = Hold(
            id=hold_id or ids.new_hold_id(practitioner_id),
            practice_id=pid,
            practitioner_id=practitioner_id,
            visit_type_id=vt.id,
            start=begin,
            end=begin + vt.duration_minutes * 60,
            expires_at_ms=now + self.settings.hold_ttl_seconds * 1000,
            state="held",
        )
        # The answer is stored with the claim only for an idempotent request; otherwise it is rendered after
        # success (most contested holds end in 409 and need no body).
        body = render(hold, practice.timezone) if idem_key else b""
        res = await self.scripts["hold"](
            keys=[
                keys.base(pid, practitioner_id, vt.id),
                keys.claims(pid, practitioner_id),
                keys.schedule(pid, practitioner_id),
                keys.hold(pid, hold.id),
                keys.hold_expiries(pid),
                keys.events(pid),
                keys.audit(pid),
                keys.idempotency(pid, "hold", idem_key),
            ],
            args=[
                now,
                hold.start,
                hold.end,
                hold.id,
                self.settings.hold_ttl_seconds * 1000,
                self.settings.hold_retention_seconds * 1000,
                pid,
                practitioner_id,
                vt.id,
                ctx.actor,
                ctx.request_id,
                body_fp if idem_key else "",
                body,
            ],
        )
        return self._outcome(res, lambda: body or render(hold, practice.timezone))

    @staticmethod
    def _outcome(res: list[Any], body: Callable[[], bytes]) -> tuple[bytes, bool]:
        status = _s(res[0])
        if status == "OK":
            return body(), False
        if status == "REPLAY":
            return res[1] if isinstance(res[1], bytes) else res[1].encode(), True
        if status == "IDEM_MISMATCH":
            raise errors.IdempotencyKeyReusedError()
        if status == "UNAVAILABLE":
            raise errors.SlotUnavailableError(_s(res[1]) or "")
        raise AssertionError(f"unexpected script answer {res!r}")  # pragma: no cover

    async def get_hold(self, hold_id: str) -> Hold:
        pid = ids.practice_of(hold_id, "h")
        if pid is None:
            raise errors.NotFoundError("hold", hold_id)
        h = {_s(k): _s(v) for k, v in (await self.redis.hgetall(keys.hold(pid, hold_id))).items()}
        if not h:
            raise errors.NotFoundError("hold", hold_id)
        state = h["state"] or ""
        if state == "held" and int(h["expires_ms"] or 0) <= self.now_ms():
            state = "expired"  # exact expiry: never waits for the sweeper
        return Hold(
            id=hold_id,
            practice_id=pid,
            practitioner_id=h["practitioner_id"] or "",
            visit_type_id=h["visit_type_id"] or "",
            start=int(h["start"] or 0),
            end=int(h["end"] or 0),
            expires_at_ms=int(h["expires_ms"] or 0),
            state=state,
            appointment_id=h.get("appointment_id"),
        )

    async def release_hold(self, hold_id: str, ctx: Ctx = SYSTEM) -> str:
        """Release a live hold. Returns 'released', or the state it already had ('expired', 'released')."""
        pid, prac = ids.practice_of(hold_id, "h"), ids.practitioner_of_hold(hold_id)
        if pid is None or prac is None:
            raise errors.NotFoundError("hold", hold_id)
        res = await self.scripts["release"](
            keys=[
                keys.hold(pid, hold_id),
                keys.claims(pid, prac),
                keys.hold_expiries(pid),
                keys.events(pid),
                keys.audit(pid),
            ],
            args=[self.now_ms(), hold_id, ctx.actor, ctx.request_id],
        )
        status = _s(res[0])
        if status == "NOT_FOUND":
            raise errors.NotFoundError("hold", hold_id)
        if status == "USED":
            raise errors.HoldUsedError(hold_id, _s(res[1]))
        return "released" if status == "OK" else _s(res[1]) or ""

    async def expire_due_holds(self, limit: int = 200) -> int:
        """Tidy: mark holds past their expiry as expired and audit it. Correctness never depends on it."""
        total = 0
        now = self.now_ms()
        for raw_pid in await self.redis.smembers(keys.PRACTICES):
            pid = _s(raw_pid) or ""
            due = [
                _s(h) or ""
                for h in await self.redis.zrangebyscore(keys.hold_expiries(pid), "-inf", now, start=0, num=limit)
            ]
            if not due:
                continue
            script_keys = [keys.hold_expiries(pid), keys.events(pid), keys.audit(pid)]
            for hid in due:
                prac = ids.practitioner_of_hold(hid) or ""
                script_keys += [keys.hold(pid, hid), keys.claims(pid, prac)]
            total += int(await self.scripts["expire"](keys=script_keys, args=[now, "sweeper", *due]))
        return total

    # ----------------------------------------------------------------- appointments
    async def book(
        self,
        hold_id: str,
        patient: Patient,
        *,
        render: Render,
        ctx: Ctx = SYSTEM,
        idem_key: str | None = None,
        body_fp: str = "",
    ) -> tuple[bytes, bool]:
        """Book a live hold; returns (the rendered Appointment, whether this was an idempotent replay)."""
        pid, prac = ids.practice_of(hold_id, "h"), ids.practitioner_of_hold(hold_id)
        if pid is None or prac is None:
            raise errors.NotFoundError("hold", hold_id)
        idem = keys.idempotency(pid, "book", idem_key)
        practice = await self._practice(pid)
        token = ids.new_manage_token()
        appt_id = ids.new_appointment_id(pid)
        now = self.now_ms()

        def appointment(vt_id: Any, start: Any, end: Any) -> Appointment:
            return Appointment(
                id=appt_id,
                status="booked",
                version=1,
                practice_id=pid,
                practitioner_id=prac,
                visit_type_id=_s(vt_id) or "",
                start=int(start or 0),
                end=int(end or 0),
                patient=patient,
                manage_token=token,
                hold_id=hold_id,
            )

        body = b""
        if idem_key:
            # The answer is stored with the booking for replays, so it is rendered first, from the hold.
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hmget(keys.hold(pid, hold_id), "visit_type_id", "start", "end")
                pipe.get(idem)
                held, prior = await pipe.execute()
            if prior is not None:
                fp, _, stored = prior.partition(b"\n")
                if fp.decode() != body_fp:
                    raise errors.IdempotencyKeyReusedError()
                return stored, True
            body = render(appointment(*held), practice.timezone)
        res = await self.scripts["book"](
            keys=[
                keys.hold(pid, hold_id),
                keys.claims(pid, prac),
                keys.appointment(pid, appt_id),
                keys.hold_expiries(pid),
                keys.events(pid),
                keys.audit(pid),
                idem,
            ],
            args=[
                now,
                hold_id,
                appt_id,
                _enc.encode(patient),
                ids.token_hash(token),
                ctx.actor,
                ctx.request_id,
                body_fp if idem_key else "",
                body,
                patient_ref(pid, patient),
            ],
        )
        status = _s(res[0])
        if status == "NOT_FOUND":
            raise errors.NotFoundError("hold", hold_id)
        self._raise_for_hold(status, res, hold_id)
        if status == "OVERLAP":
            raise errors.OverlapDetectedError("a booked appointment already overlaps this hold")
        return self._outcome(res, lambda: body or render(appointment(*res[1:4]), practice.timezone))

    @staticmethod
    def _raise_for_hold(status: str | None, res: list[Any], hold_id: str) -> None:
        """The answers every hold-consuming script shares: already booked, or no longer live."""
        if status == "USED":
            raise errors.HoldUsedError(hold_id, _s(res[1]))
        if status == "EXPIRED":
            raise errors.HoldExpiredError(hold_id, _s(res[1]) or "")

    async def get_appointment(self, appointment_id: str) -> tuple[Appointment, str]:
        """The appointment and the SHA-256 hash of its manage token."""
        pid = ids.practice_of(appointment_id, "a")
        if pid is None:
            raise errors.NotFoundError("appointment", appointment_id)
        a = {_s(k): _s(v) for k, v in (await self.redis.hgetall(keys.appointment(pid, appointment_id))).items()}
        if not a:
            raise errors.NotFoundError("appointment", appointment_id)
        appt = Appointment(
            id=appointment_id,
            status=a["status"] or "",
            version=int(a["version"] or 0),
            practice_id=pid,
            practitioner_id=a["practitioner_id"] or "",
            visit_type_id=a["visit_type_id"] or "",
            start=int(a["start"] or 0),
            end=int(a["end"] or 0),
            patient=msgspec.json.decode(a["patient"] or "{}", type=Patient),
            hold_id=a.get("hold_id"),
            cancel_reason=a.get("cancel_reason") or None,
        )
        return appt, a.get("manage_hash") or ""

    async def cancel(self, appointment_id: str, reason: str = "", ctx: Ctx = SYSTEM) -> Appointment:
        """Cancel (idempotent): the interval is offered again at once."""
        for _ in range(5):
            appt, _hash = await self.get_appointment(appointment_id)
            pid = appt.practice_id
            res = await self.scripts["cancel"](
                keys=[
                    keys.appointment(pid, appt.id),
                    keys.claims(pid, appt.practitioner_id),
                    keys.events(pid),
                    keys.audit(pid),
                ],
                args=[self.now_ms(), appt.id, appt.practitioner_id, ctx.actor, ctx.request_id, reason],
            )
            status = _s(res[0])
            if status == "NOT_FOUND":
                raise errors.NotFoundError("appointment", appointment_id)
            if status in ("OK", "ALREADY"):
                return (await self.get_appointment(appointment_id))[0]
        raise errors.BookingError("the appointment kept moving while it was being cancelled; retry")

    async def reschedule(self, appointment_id: str, hold_id: str, ctx: Ctx = SYSTEM) -> Appointment:
        """Move a booked appointment onto a live hold of the same practice, atomically (version + 1)."""
        hold_pid, hold_prac = ids.practice_of(hold_id, "h"), ids.practitioner_of_hold(hold_id)
        for _ in range(5):
            appt, _hash = await self.get_appointment(appointment_id)
            pid = appt.practice_id
            if hold_pid != pid or hold_prac is None:
                raise errors.NotFoundError("hold", hold_id)  # holds of other practices do not exist here
            res = await self.scripts["reschedule"](
                keys=[
                    keys.appointment(pid, appt.id),
                    keys.claims(pid, appt.practitioner_id),
                    keys.hold(pid, hold_id),
                    keys.claims(pid, hold_prac),
                    keys.hold_expiries(pid),
                    keys.events(pid),
                    keys.audit(pid),
                ],
                args=[self.now_ms(), appt.id, hold_id, appt.practitioner_id, ctx.actor, ctx.request_id],
            )
            status = _s(res[0])
            if status == "RETRY":
                continue
            if status == "OK":
                return (await self.get_appointment(appointment_id))[0]
            if status == "NOT_FOUND":
                raise errors.NotFoundError("appointment", appointment_id)
            if status == "CANCELLED":
                raise errors.AppointmentCancelledError(appointment_id)
            if status == "HOLD_NOT_FOUND":
                raise errors.NotFoundError("hold", hold_id)
            self._raise_for_hold(status, res, hold_id)
            if status == "OVERLAP":
                raise errors.SlotUnavailableError("taken")
        raise errors.BookingError("the appointment kept moving while it was being rescheduled; retry")
