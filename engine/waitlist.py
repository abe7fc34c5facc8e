"""The waitlist (docs/waitlist.md): join, read, list, accept, decline, leave; entries whose window passed.

Offers are made by the scripts that free time (engine/offers.py sends their kits); this module only reads
entries, validates and expands a join's window into UTC spans, and drives the entry's own changes."""

from __future__ import annotations

import datetime as dt
import functools
import time

import msgspec

from engine import errors, ids, keys, limits, scripts, timeutil
from engine.appointments import MOVE_ATTEMPTS, Appointments
from engine.catalog import Catalog
from engine.codec import encoder, text
from engine.context import Runtime
from engine.idempotency import IdempotencyKey
from engine.model import SYSTEM, Appointment, Ctx, WaitlistOffer, WaitlistRecord, WaitlistRequest, patient_record
from engine.offers import Offers
from engine.scripts.waitlist import JoinCaps, OfferKit, drop_from_queue, waiting_member, waitlist_reindex

_decoder = msgspec.json.Decoder(WaitlistRecord)
SWEEP_ENDED_EVERY_S = 60.0


class Entry(msgspec.Struct, frozen=True):
    """An entry as read now: ``status`` adds 'ended' (its window passed) and reads an offer past its expiry as
    gone (``offer`` None, 'waiting') before the sweeper tidied it; ``position`` counts the waiting entries of its
    practice and visit type that joined before it; ``manage_token`` only in the join's answer."""

    record: WaitlistRecord
    status: str
    position: int
    offer: WaitlistOffer | None
    manage_token: str | None = None


def decode(raw: bytes | str) -> WaitlistRecord:
    return _decoder.decode(raw)


def ended(rec: WaitlistRecord, now_ms: int) -> bool:
    return rec.spans[-1][1] * 1000 <= now_ms


def live_offer(rec: WaitlistRecord, now_ms: int) -> WaitlistOffer | None:
    return rec.offer if rec.status == "offered" and rec.offer is not None and rec.offer.expires_ms > now_ms else None


def status_of(rec: WaitlistRecord, now_ms: int) -> str:
    if rec.status in ("booked", "left"):
        return rec.status
    if live_offer(rec, now_ms) is not None:
        return "offered"
    return "ended" if ended(rec, now_ms) else "waiting"


def spans(req: WaitlistRequest, tz_name: str) -> list[list[int]]:
    """The request's window as sorted UTC intervals [s, e) (epoch seconds): per matching local date, from
    ``from_time`` to ``to_time`` (absent: midnight to the next midnight), wall-clock times resolved as schedule
    windows are (engine/timeutil.py: a time in a spring-forward gap is the first instant after it, a repeated one
    its first occurrence); touching intervals merged, empty ones (inside a gap) dropped."""
    tz = timeutil.zone(tz_name)
    lo = timeutil.parse_hhmm(req.from_time) if req.from_time else 0
    hi = timeutil.parse_hhmm(req.to_time) if req.to_time else 24 * 60
    days = set(req.weekdays or timeutil.WEEKDAYS)
    out: list[list[int]] = []
    day = req.from_date
    while day <= req.to_date:
        if timeutil.WEEKDAYS[day.weekday()] in days:
            s = timeutil.wall_to_epoch(day, lo, tz, is_end=False)
            e = timeutil.wall_to_epoch(day, hi, tz, is_end=True)
            if out and out[-1][1] >= s:
                out[-1][1] = max(out[-1][1], e)
            elif e > s:
                out.append([s, e])
        day += dt.timedelta(days=1)
    return out


class Waitlist:
    def __init__(self, rt: Runtime, catalog: Catalog, appointments: Appointments) -> None:
        self.rt = rt
        self.catalog = catalog
        self.appointments = appointments
        self.offers = Offers(rt, catalog)
        self._swept = 0.0

    # ----------------------------------------------------------------- join
    async def _validate(self, practice_id: str, req: WaitlistRequest) -> str:
        """Every refusal of a join, before anything is stored; returns the practice's time zone."""
        practice = await self.catalog.get_practice(practice_id)
        if ids.practice_of(req.visit_type_id, "v") != practice_id:
            raise errors.NotFoundError("visit type", req.visit_type_id)
        await self.catalog.get_visit_type(req.visit_type_id)
        prs = [req.practitioner_id] if req.practitioner_id else None
        if req.practitioner_id is not None:
            if ids.practice_of(req.practitioner_id, "r") != practice_id:
                raise errors.NotFoundError("practitioner", req.practitioner_id)
            await self.catalog.get_practitioner(req.practitioner_id)
        else:
            prs = [p.id for p in await self.catalog.list_practitioners(practice_id)]
        lo = timeutil.parse_hhmm(req.from_time) if req.from_time else 0
        hi = timeutil.parse_hhmm(req.to_time) if req.to_time else 24 * 60
        if lo >= hi:
            raise errors.InvalidRequestError(f"from_time must be before to_time ({req.from_time}-{req.to_time})")
        today = timeutil.local_date_of(int(self.rt.clock()), timeutil.zone(practice.timezone))
        if req.from_date < today:
            raise errors.InvalidRequestError(f"from_date {req.from_date} is in the past (today is {today})")
        if req.to_date < req.from_date:
            raise errors.InvalidRequestError("to_date must not be before from_date")
        if (req.to_date - req.from_date).days + 1 > limits.MAX_WAITLIST_WINDOW_DAYS:
            raise errors.InvalidRequestError(
                f"the window spans {(req.to_date - req.from_date).days + 1} dates: at most "
                f"{limits.MAX_WAITLIST_WINDOW_DAYS} (from_date to to_date, inclusive)"
            )
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            for pr in prs or []:
                pipe.hget(keys.schedule(practice_id, pr), "horizon_s")
            horizons = [int(h) // 86400 for h in await pipe.execute() if h is not None]
        horizon = max(horizons, default=limits.MAX_HORIZON_DAYS)  # no schedule yet: one may open time later
        last = today + dt.timedelta(days=horizon)
        if req.to_date > last:
            raise errors.InvalidRequestError(
                f"the window reaches past the horizon ({horizon} days): to_date must be {last} or earlier"
            )
        return practice.timezone

    async def join(self, practice_id: str, req: WaitlistRequest, ctx: Ctx = SYSTEM, client: str | None = None) -> Entry:
        """Validate, expand the window and store the entry ('waiting'); the answer carries its manage token.
        ``client``: who joins, for the per-client cap (a public client's or app end user's identity; None: staff,
        admin, the engine). The practice's cap applies to every join."""
        tz = await self._validate(practice_id, req)
        window = spans(req, tz)
        if not window:
            raise errors.InvalidRequestError("no time of that window is a time of day that exists (weekdays, times)")
        token = ids.new_manage_token()
        now = self.rt.now_ms()
        rec = WaitlistRecord(
            id=ids.new_waitlist_entry_id(practice_id),
            practice_id=practice_id,
            visit_type_id=req.visit_type_id,
            practitioner_id=req.practitioner_id,
            from_date=req.from_date.isoformat(),
            to_date=req.to_date.isoformat(),
            weekdays=[d for d in timeutil.WEEKDAYS if d in set(req.weekdays)] if req.weekdays else None,
            from_time=req.from_time,
            to_time=req.to_time,
            spans=window,
            order=0,
            status="waiting",
            version=0,
            joined_ms=now,
            updated_ms=now,
            manage_hash=ids.token_hash(token),
            patient=patient_record(req.patient),
        )
        s = self.rt.settings
        caps = JoinCaps(
            per_practice=s.waitlist_max_per_practice,
            per_client=s.waitlist_max_per_client,
            client=ids.token_hash(f"{practice_id}|{client}")[:24] if client else None,
        )
        await scripts.waitlist_join(
            self.rt.lua, now_ms=now, practice_id=practice_id, entry_id=rec.id, record=encoder.encode(rec), ctx=ctx,
            caps=caps,
        )  # fmt: skip
        entry, _ = await self.get(rec.id)
        return msgspec.structs.replace(entry, manage_token=token)

    # ----------------------------------------------------------------- reads
    async def _find(self, entry_id: str) -> tuple[str, WaitlistRecord, bool]:
        """(practice id, record, whether it was read from the database: it ended and left Redis, see
        persistence/waitlist_tidy.py)."""
        pid = ids.practice_of(entry_id, "w")
        if pid is None:
            raise errors.NotFoundError("waitlist entry", entry_id)
        raw = await self.rt.redis.hget(keys.waitlist_entries(pid), entry_id)
        if raw is not None:
            return pid, decode(raw), False
        archived = await self.rt.archive.waitlist_entry(entry_id) if self.rt.archive is not None else None
        if archived is None or archived.practice_id != pid:
            raise errors.NotFoundError("waitlist entry", entry_id)
        return pid, archived, True

    async def _record(self, entry_id: str) -> tuple[str, WaitlistRecord]:
        pid, rec, _ = await self._find(entry_id)
        return pid, rec

    async def get(self, entry_id: str) -> tuple[Entry, str]:
        """The entry as it reads now, and the SHA-256 hash of its manage token."""
        pid, rec = await self._record(entry_id)
        now = self.rt.now_ms()
        # the waiting entries of its visit type with a lower order: one ZLEXCOUNT of the waiting set (no scan)
        position = await self.rt.redis.zlexcount(
            keys.waitlist_waiting(pid), f"[{rec.visit_type_id}|", f"({waiting_member(rec)[: -len(rec.id) - 1]}"
        )
        return Entry(rec, status_of(rec, now), position, live_offer(rec, now)), rec.manage_hash

    async def list(self, practice_id: str) -> list[Entry]:
        """Every entry of the practice, oldest first."""
        await self.catalog.get_practice(practice_id)
        now = self.rt.now_ms()
        recs = sorted((decode(r) for r in await self.rt.redis.hvals(keys.waitlist_entries(practice_id))),
                      key=lambda r: r.order)  # fmt: skip
        waiting: dict[str, int] = {}
        out = []
        for rec in recs:
            status = status_of(rec, now)
            out.append(Entry(rec, status, waiting.get(rec.visit_type_id, 0), live_offer(rec, now)))
            if status == "waiting":
                waiting[rec.visit_type_id] = waiting.get(rec.visit_type_id, 0) + 1
        return out

    # ----------------------------------------------------------------- the entry's own changes
    async def accept(
        self, entry_id: str, ctx: Ctx = SYSTEM, idem: IdempotencyKey | None = None
    ) -> tuple[Appointment, bool]:
        """Book the entry's live offer through the usual booking (book.lua marks the entry booked)."""
        pid, rec = await self._record(entry_id)
        if idem is not None:
            replay = await self.appointments.replayed(pid, idem)
            if replay is not None:
                return replay, True
        offer = live_offer(rec, self.rt.now_ms())
        if offer is None:
            if rec.status == "offered" or (rec.status == "waiting" and rec.lapsed_ms is not None):
                raise errors.OfferExpiredError(entry_id)
            raise errors.NoOfferError(entry_id, rec.status)
        try:
            return await self.appointments.book(offer.hold_id, rec.patient, ctx=ctx, idem=idem, entry_id=entry_id)
        except errors.HoldExpiredError as exc:
            if exc.state == "expired":
                raise errors.OfferExpiredError(entry_id) from None
            raise errors.NoOfferError(entry_id, exc.state) from None

    async def _step(self, pid: str, entry_id: str, hold_id: str, leave: bool, ctx: Ctx, kit: OfferKit | None
                    ) -> scripts.Left | None:  # fmt: skip
        run = scripts.waitlist_leave if leave else scripts.waitlist_decline
        return await run(
            self.rt.lua, now_ms=self.rt.now_ms(), practice_id=pid, entry_id=entry_id, hold_id=hold_id, kit=kit,
            ctx=ctx,
        )  # fmt: skip

    async def _change(self, entry_id: str, leave: bool, ctx: Ctx) -> Entry:
        """Decline or leave, reading the entry again while its offer changed meanwhile (the script's RETRY)."""
        for _ in range(MOVE_ATTEMPTS):
            pid, rec, archived = await self._find(entry_id)
            if archived:  # it ended (booked, left, window passed) and left Redis: nothing changes any more
                if leave:
                    return (await self.get(entry_id))[0]
                if rec.status == "waiting" and rec.lapsed_ms is not None:
                    raise errors.OfferExpiredError(entry_id)
                raise errors.NoOfferError(entry_id, status_of(rec, self.rt.now_ms()))
            offered = rec.offer if rec.status == "offered" else None
            step = functools.partial(self._step, pid, entry_id, offered.hold_id if offered else "", leave, ctx)
            done = await (self.offers.run(pid, offered.practitioner_id, step) if offered else step(None))
            if done is not None:
                return (await self.get(entry_id))[0]
        raise errors.BookingError("the entry kept changing meanwhile; retry")

    async def decline(self, entry_id: str, ctx: Ctx = SYSTEM) -> Entry:
        """Give the live offer up: the entry waits again, the interval goes to the next matching entry."""
        return await self._change(entry_id, False, ctx)

    async def leave(self, entry_id: str, ctx: Ctx = SYSTEM) -> Entry:
        """Leave the waitlist ('left'); a live offer is released and offered on."""
        return await self._change(entry_id, True, ctx)

    # ----------------------------------------------------------------- tidying
    async def drop_ended(self, force: bool = False) -> int:
        """Drop entries whose window passed from every practice's queue (at most every ``SWEEP_ENDED_EVERY_S``
        per process unless ``force``); returns how many were dropped."""
        if not force and time.monotonic() - self._swept < SWEEP_ENDED_EVERY_S:
            return 0
        self._swept = time.monotonic()
        now, dropped = self.rt.now_ms(), 0
        for raw_pid in await self.rt.redis.smembers(keys.PRACTICES):
            pid = text(raw_pid)
            queued = [text(i) for i in await self.rt.redis.zrange(keys.waitlist_queue(pid), 0, -1)]
            if not queued:
                continue
            if await self.rt.redis.hget(keys.waitlist_stats(pid), "indexed") is None:
                await waitlist_reindex(self.rt.lua, pid)  # entries from before the index: once per practice
            raws = await self.rt.redis.hmget(keys.waitlist_entries(pid), queued)
            recs = [(i, decode(r)) for i, r in zip(queued, raws) if r is not None]
            gone = [rec for _, rec in recs if rec.status == "waiting" and ended(rec, now)]
            await drop_from_queue(self.rt.lua, pid, gone)
            dropped += len(gone)
        return dropped
