"""Holds: claim an offered interval for a few minutes, read it, release it, tidy expired ones."""

from __future__ import annotations

import datetime as dt
import logging

import msgspec

from engine import errors, ids, keys, scripts, timeutil
from engine.catalog import Catalog
from engine.codec import encoder, text
from engine.context import Runtime
from engine.idempotency import IdempotencyKey, seal, unseal
from engine.model import SYSTEM, Ctx, Hold
from engine.offers import Offers
from engine.redis import clients
from engine.scripts.waitlist import OfferKit
from engine.storm import Storm

log = logging.getLogger("booking.holds")

FURTHEST_HOLD_S = 800 * 86400  # beyond any horizon (730 days)
EXPIRE_CHUNK = 25  # holds per expire call while entries wait (each with its OFFER_IDS fresh hold ids)


def local_day(t: int, tz_name: str) -> tuple[int, int]:
    """The bounds of the practice's local date of ``t`` (23 or 25 hours on DST days): a daily limit counts them."""
    tz = timeutil.zone(tz_name)
    return timeutil.day_bounds(timeutil.local_date_of(t, tz), tz)


class Holds:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        self.offers = Offers(rt, catalog)
        self.sweep_storm = Storm("hold sweep", log)  # unreachable shards: one line per outage (engine/storm.py)

    async def hold(
        self,
        practitioner_id: str,
        visit_type_id: str,
        start: dt.datetime,
        *,
        ctx: Ctx = SYSTEM,
        idem: IdempotencyKey | None = None,
        hold_id: str | None = None,
    ) -> tuple[Hold, bool]:
        """Claim a hold; returns (the hold, whether this was an idempotent replay of an earlier claim)."""
        pid = ids.practice_of(practitioner_id, "r")
        if pid is None:
            raise errors.NotFoundError("practitioner", practitioner_id)
        practice, vt, _ = await self.catalog.search_context(pid, visit_type_id, practitioner_id)
        begin = timeutil.to_epoch(start)
        if start.microsecond or start.second:
            raise errors.SlotUnavailableError("not_a_slot")
        now = self.rt.now_ms()
        if not (now // 1000 - 86400 <= begin <= now // 1000 + FURTHEST_HOLD_S):
            raise errors.SlotUnavailableError("outside_any_horizon")
        ttl_ms = self.rt.settings.hold_ttl_seconds * 1000
        hold = Hold(
            id=hold_id or ids.new_hold_id(practitioner_id),
            practice_id=pid,
            practitioner_id=practitioner_id,
            visit_type_id=vt.id,
            start=begin,
            end=begin + vt.duration_minutes * 60,
            expires_at_ms=now + ttl_ms,
            state="held",
        )
        call = scripts.hold_call(
            now_ms=now,
            practice_id=pid,
            practitioner_id=practitioner_id,
            visit_type_id=vt.id,
            hold_id=hold.id,
            start=hold.start,
            end=hold.end,
            ttl_ms=ttl_ms,
            retention_ms=self.rt.settings.hold_retention_seconds * 1000,
            ctx=ctx,
            idem_ref=idem.ref if idem else None,
            fingerprint=idem.fingerprint if idem else "",
            record=seal(idem, encoder.encode(hold)) if idem else b"",  # stored only for idempotent requests
            day=local_day(begin, practice.timezone),
        )
        replay = await scripts.hold(self.rt.lua, call)
        if replay is not None and idem is not None:
            return msgspec.json.decode(unseal(idem, replay.record), type=Hold), True
        return hold, False

    async def get_hold(self, hold_id: str) -> Hold:
        pid = ids.practice_of(hold_id, "h")
        if pid is None:
            raise errors.NotFoundError("hold", hold_id)
        h = {text(k): text(v) for k, v in (await self.rt.redis.hgetall(keys.hold(pid, hold_id))).items()}
        if not h:
            raise errors.NotFoundError("hold", hold_id)
        state = h["state"]
        if state == "held" and int(h["expires_ms"] or 0) <= self.rt.now_ms():
            state = "expired"  # exact expiry: never waits for the sweeper
        return Hold(
            id=hold_id,
            practice_id=pid,
            practitioner_id=h["practitioner_id"],
            visit_type_id=h["visit_type_id"],
            start=int(h["start"] or 0),
            end=int(h["end"] or 0),
            expires_at_ms=int(h["expires_ms"] or 0),
            state=state,
            appointment_id=h.get("appointment_id"),
        )

    async def release_hold(self, hold_id: str, ctx: Ctx = SYSTEM) -> str:
        """Release a live hold. Returns 'released', or the state it already had ('expired', 'released'). A waitlist
        offer's hold only by a privileged caller (staff, admin, the engine; else OfferHoldError): its entry gives
        it up by declining."""
        pid, prac = ids.practice_of(hold_id, "h"), ids.practitioner_of_hold(hold_id)
        if pid is None or prac is None:
            raise errors.NotFoundError("hold", hold_id)

        async def step(kit: OfferKit) -> str:
            call = scripts.release_call(
                now_ms=self.rt.now_ms(), practice_id=pid, practitioner_id=prac, hold_id=hold_id, ctx=ctx, kit=kit,
                offers="*" if ctx.privileged else "",
            )  # fmt: skip
            return await scripts.release(self.rt.lua, call)

        return await self.offers.run(pid, prac, step)

    async def expire_due_holds(self, limit: int = 200) -> int:
        """Tidy: mark holds past their expiry as expired and audit it. Correctness never depends on it. While
        entries wait, each practitioner's holds go in calls of their own, with a kit: their intervals are offered
        to the waitlist first (until then, hold.lua and search.lua count them as taken). A practice whose shard
        is unreachable is skipped (the next sweep tidies it); the others are swept as always. When none answered,
        the first error is raised, as when the practice list itself could not be read: one outage, one line."""
        total = 0
        now = self.rt.now_ms()
        unreachable: list[str] = []
        first: BaseException | None = None
        practices = await self.rt.redis.smembers(keys.PRACTICES)
        for raw_pid in practices:
            pid = text(raw_pid)
            try:
                total += await self._expire_due(pid, now, limit)
            except clients.UNREACHABLE as exc:
                unreachable.append(pid)
                first = first or exc
        if first is not None and len(unreachable) == len(practices):
            raise first  # nothing answered (Redis went down during the sweep): the caller's one outage line
        if unreachable:
            self.sweep_storm.failed(f"{len(unreachable)} practices unreachable (their shard is down?), e.g. "
                                    f"{unreachable[0]}")  # fmt: skip
        else:
            self.sweep_storm.ok()
        return total

    async def _expire_due(self, pid: str, now: int, limit: int) -> int:
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(keys.hold_expiries(pid), "-inf", now, start=0, num=limit)
            pipe.zcard(keys.waitlist_queue(pid))
            due, waiting = await pipe.execute()
        if not due:
            return 0
        holds = [(text(h), ids.practitioner_of_hold(text(h)) or "") for h in due]
        if not waiting:  # a waitlist that starts waiting meanwhile: its script tidies nothing, the next sweep does
            return await scripts.expire(self.rt.lua, now_ms=now, practice_id=pid, holds=holds, actor="sweeper")
        total = 0
        by_pr: dict[str, list[tuple[str, str]]] = {}
        for h in holds:
            by_pr.setdefault(h[1], []).append(h)
        for pr, mine in by_pr.items():
            for i in range(0, len(mine), EXPIRE_CHUNK):
                chunk = mine[i : i + EXPIRE_CHUNK]
                kit = await self.offers.kit(pid, pr, len(chunk), fresh=True)
                total += await scripts.expire(
                    self.rt.lua, now_ms=now, practice_id=pid, holds=chunk, actor="sweeper", kit=kit
                )
        return total
