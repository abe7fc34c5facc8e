"""Series (API.md "series"): every occurrence of a repeated visit held in one step or none (lua/series_hold.lua),
booked in one step (lua/series_book.lua), then each occurrence an appointment of its own; cancelled together
from the series' manage token (each occurrence ahead cancelled as a single appointment is: its notices, its
waitlist offers)."""

from __future__ import annotations

import datetime as dt

import msgspec

from engine import errors, ids, keys, timeutil
from engine import scripts as calls
from engine.appointments import MOVE_ATTEMPTS, Appointments, patient_ref
from engine.catalog import Catalog
from engine.codec import encoder, text
from engine.context import Runtime
from engine.holds import FURTHEST_HOLD_S, Holds, local_day
from engine.idempotency import IdempotencyKey, seal, unseal
from engine.model import SYSTEM, Appointment, Ctx, Hold, Patient
from engine.offers import KIT_ATTEMPTS
from engine.scripts.bookings import Replay

MIN_COUNT, MAX_COUNT = 2, 12
MIN_EVERY_DAYS, MAX_EVERY_DAYS = 1, 28


class SeriesHold(msgspec.Struct):
    """A held series: one hold per occurrence, all expiring together."""

    id: str
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    every_days: int
    count: int
    holds: list[Hold]
    expires_at_ms: int
    state: str = "held"


class SeriesBooking(msgspec.Struct):
    """A booked series: its appointments in order, and (when just booked) the manage token that reaches them."""

    series_id: str
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    every_days: int
    count: int
    appointments: list[Appointment]
    manage_token: str | None = None


def occurrence_starts(start: dt.datetime, every_days: int, count: int, tz_name: str) -> list[int]:
    """The instants of a series' occurrences: the first at ``start``, each next one ``every_days`` local dates
    later at the same local wall-clock time (a DST change between them moves the instant, never the wall time;
    a wall time that a spring-forward gap skips resolves as schedules do: engine.timeutil.wall_to_epoch)."""
    tz = timeutil.zone(tz_name)
    local = start.astimezone(tz)
    minutes = local.hour * 60 + local.minute
    first = timeutil.to_epoch(start)
    return [first] + [
        timeutil.wall_to_epoch(local.date() + dt.timedelta(days=i * every_days), minutes, tz, is_end=False)
        for i in range(1, count)
    ]


def _check_repeat(every_days: int, count: int) -> None:
    if not MIN_COUNT <= count <= MAX_COUNT:
        raise errors.InvalidRequestError(f"repeat.count must be {MIN_COUNT} to {MAX_COUNT}, not {count}")
    if not MIN_EVERY_DAYS <= every_days <= MAX_EVERY_DAYS:
        raise errors.InvalidRequestError(
            f"repeat.every_days must be {MIN_EVERY_DAYS} to {MAX_EVERY_DAYS}, not {every_days}"
        )


def _booking(
    series_id: str, pid: str, prac: str, s: dict[str, str], appts: list[Appointment], token: str | None = None
) -> SeriesBooking:
    """A booked series from its hash (``s``) and its appointments."""
    return SeriesBooking(
        series_id=series_id,
        practice_id=pid,
        practitioner_id=prac,
        visit_type_id=s["visit_type_id"],
        every_days=int(s["every_days"]),
        count=int(s["count"]),
        appointments=appts,
        manage_token=token,
    )


class Series:
    def __init__(self, rt: Runtime, catalog: Catalog, holds: Holds, appointments: Appointments) -> None:
        self.rt = rt
        self.catalog = catalog
        self.holds = holds
        self.appointments = appointments

    async def hold(
        self,
        practitioner_id: str,
        visit_type_id: str,
        start: dt.datetime,
        every_days: int,
        count: int,
        *,
        ctx: Ctx = SYSTEM,
        idem: IdempotencyKey | None = None,
        series_id: str | None = None,
    ) -> tuple[SeriesHold, bool]:
        """Hold every occurrence or none; returns (the series, whether this was an idempotent replay). Raises
        SeriesUnavailableError naming each occurrence that is not offered."""
        _check_repeat(every_days, count)
        pid = ids.practice_of(practitioner_id, "r")
        if pid is None:
            raise errors.NotFoundError("practitioner", practitioner_id)
        practice, vt, _ = await self.catalog.search_context(pid, visit_type_id, practitioner_id)
        if start.microsecond or start.second:
            raise errors.SlotUnavailableError("not_a_slot")
        starts = occurrence_starts(start, every_days, count, practice.timezone)
        now = self.rt.now_ms()
        if not (now // 1000 - 86400 <= starts[0] and starts[-1] <= now // 1000 + FURTHEST_HOLD_S):
            raise errors.SlotUnavailableError("outside_any_horizon")
        ttl_ms = self.rt.settings.hold_ttl_seconds * 1000
        duration = vt.duration_minutes * 60
        sid = series_id or ids.new_series_id(practitioner_id)
        occ = [
            calls.Occurrence(ids.new_hold_id(practitioner_id), t, t + duration, local_day(t, practice.timezone))
            for t in starts
        ]
        series = SeriesHold(
            id=sid,
            practice_id=pid,
            practitioner_id=practitioner_id,
            visit_type_id=vt.id,
            every_days=every_days,
            count=count,
            holds=[Hold(o.hold_id, pid, practitioner_id, vt.id, o.start, o.end, now + ttl_ms, "held") for o in occ],
            expires_at_ms=now + ttl_ms,
        )
        res = await calls.series_hold(
            self.rt.lua,
            now_ms=now,
            practice_id=pid,
            practitioner_id=practitioner_id,
            visit_type_id=vt.id,
            series_id=sid,
            every_days=every_days,
            occurrences=occ,
            ttl_ms=ttl_ms,
            retention_ms=self.rt.settings.hold_retention_seconds * 1000,
            ctx=ctx,
            idem_ref=idem.ref if idem else None,
            fingerprint=idem.fingerprint if idem else "",
            record=seal(idem, encoder.encode(series)) if idem else b"",
        )
        if isinstance(res, calls.Refused):
            raise errors.SeriesUnavailableError([timeutil.format_instant(t, practice.timezone) for t in res.starts])
        if isinstance(res, Replay) and idem is not None:
            return msgspec.json.decode(unseal(idem, res.record), type=SeriesHold), True
        return series, False

    async def _read(self, series_id: str) -> tuple[str, str, dict[str, str]]:
        pid, prac = ids.practice_of(series_id, "s"), ids.practitioner_of_series(series_id)
        if pid is None or prac is None:
            raise errors.NotFoundError("series", series_id)
        raw = await self.rt.redis.hgetall(keys.series(pid, series_id))
        s = {text(k): text(v) for k, v in raw.items()}
        if not s and self.rt.archive is not None:  # a booked series whose occurrences all left Redis (retention)
            s = await self.rt.archive.series(series_id) or {}
            if s.get("practice_id") != pid:
                s = {}
        if not s:
            raise errors.NotFoundError("series", series_id)
        return pid, prac, s

    async def get_hold(self, series_id: str) -> SeriesHold:
        """A series as held (its state: held, booked, released when one of its holds was, or expired)."""
        _, _, s = await self._read(series_id)
        holds = [await self.holds.get_hold(h) for h in s["holds"].split(",")]
        state = s["state"]
        if state == "held":
            states = {h.state for h in holds}
            state = "held" if states == {"held"} else ("released" if "released" in states else "expired")
        return SeriesHold(
            id=series_id,
            practice_id=s["practice_id"],
            practitioner_id=s["practitioner_id"],
            visit_type_id=s["visit_type_id"],
            every_days=int(s["every_days"]),
            count=int(s["count"]),
            holds=holds,
            expires_at_ms=int(s["expires_ms"]),
            state=state,
        )

    async def release(self, series_id: str, ctx: Ctx = SYSTEM) -> str:
        """Release every occurrence still held (each as a single hold is released: its interval offered to the
        waitlist first). 'released', or the state the series already had."""
        _, _, s = await self._read(series_id)
        if s["state"] == "booked":
            raise errors.HoldUsedError(series_id, None)
        states = [await self.holds.release_hold(h, ctx) for h in s["holds"].split(",")]
        return "released" if "released" in states else states[0]

    async def book(
        self, series_id: str, patient: Patient, *, ctx: Ctx = SYSTEM, idem: IdempotencyKey | None = None
    ) -> tuple[SeriesBooking, bool]:
        """Book every occurrence of a held series at once; returns (the series with its appointments and manage
        token, whether this was an idempotent replay)."""
        pid, prac, s = await self._read(series_id)
        hold_ids = s["holds"].split(",")
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            for h in hold_ids:
                pipe.hmget(keys.hold(pid, h), "start", "end")
            intervals = await pipe.execute()
        token = ids.new_manage_token()
        appts = [
            Appointment(
                id=ids.new_appointment_id(pid),
                status="booked",
                version=1,
                practice_id=pid,
                practitioner_id=prac,
                visit_type_id=s["visit_type_id"],
                start=int(start or 0),
                end=int(end or 0),
                patient=patient,
                manage_token=token,
                hold_id=h,
            )
            for h, (start, end) in zip(hold_ids, intervals, strict=True)
        ]
        booking = _booking(series_id, pid, prac, s, appts, token)
        res = await calls.series_book(
            self.rt.lua,
            now_ms=self.rt.now_ms(),
            practice_id=pid,
            practitioner_id=prac,
            series_id=series_id,
            bookings=[(a.hold_id or "", a.id) for a in appts],
            patient_json=encoder.encode(patient),
            manage_hash=ids.token_hash(token),
            patient_ref=patient_ref(pid, patient),
            ctx=ctx,
            idem_ref=idem.ref if idem else None,
            fingerprint=idem.fingerprint if idem else "",
            record=seal(idem, encoder.encode(booking)) if idem else b"",
        )
        if isinstance(res, Replay) and idem is not None:
            return msgspec.json.decode(unseal(idem, res.record), type=SeriesBooking), True
        return booking, False

    async def get(self, series_id: str) -> tuple[SeriesBooking, str]:
        """A booked series (each occurrence as it is now) and the SHA-256 hash of its manage token."""
        pid, prac, s = await self._read(series_id)
        if s["state"] != "booked":
            raise errors.NotFoundError("series", series_id)
        found = [await self.appointments.find(a) for a in s["appointments"].split(",")]
        return _booking(series_id, pid, prac, s, [f.appointment for f in found]), s.get("manage_hash", "")

    async def _in_redis(self, series_id: str) -> tuple[SeriesBooking, set[str]]:
        """A booked series (as ``get``) and the ids of its appointments still in Redis (the others left it with
        the retention tidy: ended long ago, read from the database, never changed again)."""
        series, _ = await self.get(series_id)
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            for a in series.appointments:
                pipe.exists(keys.appointment(series.practice_id, a.id))
            there = await pipe.execute()
        return series, {a.id for a, n in zip(series.appointments, there, strict=True) if n}

    async def cancel(self, series_id: str, reason: str = "", ctx: Ctx = SYSTEM) -> SeriesBooking:
        """Cancel every occurrence still ahead in one step (lua/series_cancel.lua: each as a single appointment is
        cancelled, by the same prelude function: idempotent, its interval offered to the waitlist first, its
        notices sent); the ones that began stay as they are. An occurrence moved meanwhile (rescheduled onto
        another practitioner, or left Redis) is read again and the whole step retried; nothing changes before."""
        for _ in range(MOVE_ATTEMPTS):
            series, live = await self._in_redis(series_id)
            now = self.rt.now_ms()
            ahead = [
                (a.id, a.practitioner_id)
                for a in series.appointments
                if a.status == "booked" and a.start * 1000 > now and a.id in live
            ]
            if not ahead:
                return series
            per: dict[str, int] = {}
            for _, pr in ahead:
                per[pr] = per.get(pr, 0) + 1
            try:
                done = await self._cancel_step(series.practice_id, series_id, ahead, per, reason, ctx)
            except errors.NotFoundError as exc:
                if exc.kind != "series":
                    raise
                continue  # an occurrence left Redis meanwhile (or the series did: read again)
            if done is not None:
                return (await self.get(series_id))[0]
        raise errors.BookingError("the series kept moving while it was being cancelled; retry")

    async def _cancel_step(
        self, pid: str, series_id: str, ahead: list[tuple[str, str]], per: dict[str, int], reason: str, ctx: Ctx
    ) -> calls.SeriesCancelled | None:
        offers = self.appointments.offers
        for attempt in range(KIT_ATTEMPTS):
            kits = [await offers.kit(pid, pr, intervals=n, fresh=attempt > 0) for pr, n in sorted(per.items())]
            try:
                return await calls.series_cancel(
                    self.rt.lua, now_ms=self.rt.now_ms(), practice_id=pid, series_id=series_id, occurrences=ahead,
                    kits=kits, reason=reason, ctx=ctx,
                )  # fmt: skip
            except errors.OfferKitError:
                if attempt == KIT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
