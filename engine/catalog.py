"""Practices, practitioners and visit types: the setup records, and the per-process cache of what never changes."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from engine import errors, ids, keys, limits, scripts, timeutil
from engine.context import Runtime
from engine.model import SYSTEM, Ctx, Practice, Practitioner, VisitType

T = TypeVar("T")
R = TypeVar("R", Practitioner, VisitType)
# how long a process reuses a search context of a whole practice: practices and visit types never change, and
# the search script refuses a list of practitioners that is no longer whole ('ROSTER'), after which it is read
# again; a context naming one practitioner (a hold, a search of one) is kept a second (nothing checks it)
SEARCH_CONTEXT_TTL_S = 300.0
PRACTITIONER_CONTEXT_TTL_S = 1.0
# Per process, small and fixed (docs/operations.md, "Memory of an API worker"); each map starts again when full.
SHARERS_TTL_S = 5.0  # Catalog.room_sharers
PRACTICES_MAX = 10_000  # practice records and visit-type lengths: at most about 450 bytes each (a 200-char name)
CONTEXTS_MAX = 4_096  # search contexts: a practice, a visit type (about 1 KiB at most) and practitioner ids...
CONTEXT_IDS_MAX = 50_000  # ...of which all contexts together hold at most this many (about 90 bytes each)


def decode(raw: bytes | str | None, kind: type[T], what: str, ident: str) -> T:
    if raw is None:
        raise errors.NotFoundError(what, ident)
    return msgspec.json.decode(raw, type=kind)


def _lists(sorted_ids: list[str], ident: str) -> bool:
    i = bisect.bisect_left(sorted_ids, ident)
    return i < len(sorted_ids) and sorted_ids[i] == ident


def check_rules(vt: VisitType) -> None:
    for name in ("buffer_before_minutes", "buffer_after_minutes"):
        if not limits.buffer_minutes_ok(getattr(vt, name)):
            raise errors.InvalidRequestError(f"{name} must be 0 to {limits.MAX_BUFFER_MINUTES}")
    if vt.max_per_day is not None and not limits.MIN_PER_DAY <= vt.max_per_day <= limits.MAX_PER_DAY:
        raise errors.InvalidRequestError(f"max_per_day must be null or {limits.MIN_PER_DAY} to {limits.MAX_PER_DAY}")


class Catalog:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._practices: dict[str, Practice] = {}
        self._contexts: dict[tuple[str, str, str | None], tuple[float, Practice, VisitType, list[str]]] = {}
        self._lengths: dict[str, tuple[tuple[str, int], ...]] = {}
        self._sharers: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._context_ids = 0  # practitioner ids held in _contexts, all together

    async def _put(self, pid: str, key: str, field: str, record: Any, event: str, ctx: Ctx) -> None:
        await scripts.put_entity(
            self.rt.lua,
            now_ms=self.rt.now_ms(),
            practice_id=pid,
            key=key,
            field=field,
            record=record,
            event=event,
            ctx=ctx,
        )

    async def create_practice(self, name: str, timezone: str, ctx: Ctx = SYSTEM, language: str = "en") -> Practice:
        if timezone not in timeutil.practice_zone_names():  # localtime, Factory...: timeutil.NOT_PRACTICE_ZONES
            raise errors.UnknownTimezoneError(f"{timezone!r} is not an IANA time zone a practice can be in")
        try:
            timeutil.zone(timezone)
        except timeutil.UnknownTimeZoneError:
            raise errors.UnknownTimezoneError(f"{timezone!r} is not an IANA time zone") from None
        practice = Practice(id=ids.new_practice_id(), name=name, timezone=timezone, language=language)
        await scripts.add_practice(self.rt.lua, practice.id)  # first: loops skip ids without a record
        await self._put(practice.id, keys.practice(practice.id), "record", practice, "practice", ctx)
        await scripts.mark_practice(self.rt.lua, practice.id, self.rt.now_ms())
        return practice

    async def get_practice(self, practice_id: str) -> Practice:
        if ids.practice_of(practice_id, "p") is None:
            raise errors.NotFoundError("practice", practice_id)
        raw = await self.rt.redis.hget(keys.practice(practice_id), "record")
        return decode(raw, Practice, "practice", practice_id)

    async def cached_practice(self, practice_id: str) -> Practice:
        """A practice record, kept per process: practices never change once created."""
        practice = self._practices.get(practice_id)
        if practice is None:
            practice = await self.get_practice(practice_id)
            if len(self._practices) >= PRACTICES_MAX:
                self._practices.clear()
            self._practices[practice_id] = practice
        return practice

    async def add_practitioner(self, practice_id: str, name: str, ctx: Ctx = SYSTEM) -> Practitioner:
        await self.get_practice(practice_id)
        pr = Practitioner(id=ids.new_practitioner_id(practice_id), practice_id=practice_id, name=name)
        await self._put(practice_id, keys.practitioners(practice_id), pr.id, pr, "practitioner", ctx)
        return pr

    async def _list(self, practice_id: str, key: Callable[[str], str], kind: type[R]) -> list[R]:
        await self.get_practice(practice_id)
        records = [msgspec.json.decode(r, type=kind) for r in await self.rt.redis.hvals(key(practice_id))]
        return sorted(records, key=lambda r: r.id)

    async def _get(self, ident: str, prefix: str, key: Callable[[str], str], kind: type[R], what: str) -> R:
        pid = ids.practice_of(ident, prefix)
        if pid is None:
            raise errors.NotFoundError(what, ident)
        return decode(await self.rt.redis.hget(key(pid), ident), kind, what, ident)

    async def list_practitioners(self, practice_id: str) -> list[Practitioner]:
        return await self._list(practice_id, keys.practitioners, Practitioner)

    async def get_practitioner(self, practitioner_id: str) -> Practitioner:
        return await self._get(practitioner_id, "r", keys.practitioners, Practitioner, "practitioner")

    async def add_visit_type(
        self,
        practice_id: str,
        name: str,
        minutes: int,
        ctx: Ctx = SYSTEM,
        *,
        buffer_before_minutes: int = 0,
        buffer_after_minutes: int = 0,
        max_per_day: int | None = None,
        resource_ids: list[str] | None = None,
    ) -> VisitType:
        if not limits.visit_minutes_ok(minutes):
            raise errors.InvalidRequestError(
                f"duration_minutes must be {limits.MIN_VISIT_MINUTES} to {limits.MAX_VISIT_MINUTES}"
            )
        await self.get_practice(practice_id)
        vt = VisitType(
            id=ids.new_visit_type_id(practice_id),
            practice_id=practice_id,
            name=name,
            duration_minutes=minutes,
            buffer_before_minutes=buffer_before_minutes,
            buffer_after_minutes=buffer_after_minutes,
            max_per_day=max_per_day,
            resource_ids=resource_ids or [],
        )
        check_rules(vt)
        await self._put(practice_id, keys.visit_types(practice_id), vt.id, vt, "visit_type", ctx)
        return vt

    async def save_visit_type(self, vt: VisitType, ctx: Ctx = SYSTEM) -> None:
        """Store a changed visit type (its buffers and daily limit; the claim scripts read them at once)."""
        check_rules(vt)
        await self._put(vt.practice_id, keys.visit_types(vt.practice_id), vt.id, vt, "visit_type", ctx)

    async def list_visit_types(self, practice_id: str) -> list[VisitType]:
        return await self._list(practice_id, keys.visit_types, VisitType)

    async def visit_type_lengths(self, practice_id: str, fresh: bool = False) -> tuple[tuple[str, int], ...]:
        """(id, duration in seconds) of every visit type of the practice, kept per process: visit types never
        change and are only ever added, and a waitlist kit missing one is refused by its script ('KIT'), after
        which the caller asks again with ``fresh``."""
        known = None if fresh else self._lengths.get(practice_id)
        if known is None:
            raw = await self.rt.redis.hvals(keys.visit_types(practice_id))
            vts = sorted((msgspec.json.decode(r, type=VisitType) for r in raw), key=lambda v: v.id)
            known = tuple((v.id, v.duration_minutes * 60) for v in vts)
            if len(self._lengths) >= PRACTICES_MAX:
                self._lengths.clear()
            self._lengths[practice_id] = known
        return known

    async def room_sharers(self, practice_id: str, fresh: bool = False) -> tuple[str, ...]:
        """The practice's practitioners when it has rooms or equipment (a claim freeing one may free another
        practitioner's starts: lua/_prelude.lua offer_freed), else (). Read at most every ``SHARERS_TTL_S`` per
        process: a practitioner or the first resource added meanwhile only misses those offers until then."""
        now = time.monotonic()
        known = None if fresh else self._sharers.get(practice_id)
        if known is not None and known[0] > now:
            return known[1]
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            pipe.hlen(keys.resources(practice_id))
            pipe.hkeys(keys.practitioners(practice_id))
            n_resources, prs = await pipe.execute()
        sharers = tuple(sorted(p.decode() if isinstance(p, bytes) else p for p in prs)) if n_resources else ()
        if len(self._sharers) >= PRACTICES_MAX:
            self._sharers.clear()
        self._sharers[practice_id] = (now + SHARERS_TTL_S, sharers)
        return sharers

    async def get_visit_type(self, visit_type_id: str) -> VisitType:
        return await self._get(visit_type_id, "v", keys.visit_types, VisitType, "visit type")

    def last_context(
        self, practice_id: str, visit_type_id: str, practitioner_id: str | None
    ) -> tuple[Practice, VisitType, list[str]] | None:
        """The last search context this process read, however old (for stale answers while Redis is down)."""
        hit = self._contexts.get((practice_id, visit_type_id, practitioner_id))
        return None if hit is None else (hit[1], hit[2], hit[3])

    async def search_context(
        self, practice_id: str, visit_type_id: str, practitioner_id: str | None, fresh: bool = False
    ) -> tuple[Practice, VisitType, list[str]]:
        """The practice, visit type and practitioner ids a search or a hold needs. Practices and visit types never
        change once created and practitioners are only ever added (the search script checks the list is whole,
        'ROSTER'), so each process keeps them a while: most searches then cost a single Redis round trip (the
        search script). ``fresh``: read them again."""
        now = time.monotonic()
        cache_key = (practice_id, visit_type_id, practitioner_id)
        hit = self._contexts.get(cache_key)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1], hit[2], hit[3]
        if practitioner_id is not None and not fresh:
            # practitioners are only ever added: one the practice's context lists exists (a hold after a search
            # costs no read of its own)
            whole = self._contexts.get((practice_id, visit_type_id, None))
            if whole is not None and whole[0] > now and _lists(whole[3], practitioner_id):
                return whole[1], whole[2], [practitioner_id]
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.practice(practice_id), "record")
            pipe.hget(keys.visit_types(practice_id), visit_type_id)
            if practitioner_id is None:
                pipe.hkeys(keys.practitioners(practice_id))
            else:
                pipe.hexists(keys.practitioners(practice_id), practitioner_id)
            raw_practice, raw_vt, prs = await pipe.execute()
        practice = decode(raw_practice, Practice, "practice", practice_id)
        vt = decode(raw_vt, VisitType, "visit type", visit_type_id)
        if practitioner_id is not None:
            if not prs:
                raise errors.NotFoundError("practitioner", practitioner_id)
            prac_ids = [practitioner_id]
        else:
            prac_ids = sorted(p.decode() if isinstance(p, bytes) else str(p) for p in prs)
        replaced = self._contexts.pop(cache_key, None)
        if replaced is not None:
            self._context_ids -= len(replaced[3])
        if len(self._contexts) >= CONTEXTS_MAX or self._context_ids + len(prac_ids) > CONTEXT_IDS_MAX:
            self._contexts.clear()
            self._context_ids = 0
        if len(prac_ids) <= CONTEXT_IDS_MAX:  # a practice larger than the whole bound is read every time
            ttl = SEARCH_CONTEXT_TTL_S if practitioner_id is None else PRACTITIONER_CONTEXT_TTL_S
            self._contexts[cache_key] = (now + ttl, practice, vt, prac_ids)
            self._context_ids += len(prac_ids)
        return practice, vt, prac_ids

    def held(self) -> dict[str, int]:
        """How much this process keeps: practices, visit-type lengths, search contexts, their practitioner ids."""
        return {"practices": len(self._practices), "lengths": len(self._lengths), "contexts": len(self._contexts),
                "context_ids": self._context_ids}  # fmt: skip
