"""Rooms and equipment of a practice (API.md, "Buffers, daily limits, shared rooms and equipment..."): created,
listed, closed; a visit type names the ones it needs and the claim scripts take them all (lua/_prelude.lua,
``res_*``)."""

from __future__ import annotations

import msgspec

from engine import errors, ids, keys, limits, scripts
from engine.catalog import Catalog
from engine.codec import text
from engine.context import Runtime
from engine.model import SYSTEM, Closure, Ctx, Resource
from engine.offers import Offers
from engine.scripts.waitlist import OfferKit

KINDS = ("room", "equipment")


def resource_practice(resource_id: str) -> str:
    pid = ids.practice_of(resource_id, "q")
    if pid is None:
        raise errors.NotFoundError("resource", resource_id)
    return pid


def claim_member(member: bytes | str) -> tuple[str, str, str, int, int]:
    """A member of the resource claims zset: (resource id, kind 'h' or 'b', claim id, end_s, expires_ms)."""
    rid, kind, ident, end, exp = text(member).split("|")
    return rid, kind, ident, int(end), int(exp)


async def occupations(rt: Runtime, pid: str, resource_ids: list[str], now_ms: int) -> list[tuple[str, int, int]]:
    """What occupies any of ``resource_ids`` from now on: (claim id, start_s, end_s) of each live claim, and
    ('', start_s, end_s) of each closure (what a visit needing them must not overlap)."""
    if not resource_ids:
        return []
    async with rt.redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.resources(pid), resource_ids)
        pipe.zrangebyscore(keys.resource_claims(pid), now_ms // 1000 - limits.MAX_DURATION_S, "+inf", withscores=True)
        records, members = await pipe.execute()
    out: list[tuple[str, int, int]] = []
    for raw in records:
        if raw is not None:
            out += [("", s, e) for s, e in msgspec.json.decode(raw, type=Resource).spans]
    for member, score in members:
        rid, kind, ident, end, exp = claim_member(member)
        if rid in resource_ids and (kind == "b" or exp > now_ms):
            out.append((ident, int(score), end))
    return out


class Resources:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        self.offers = Offers(rt, catalog)

    async def add(self, practice_id: str, name: str, kind: str, ctx: Ctx = SYSTEM) -> Resource:
        if kind not in KINDS:
            raise errors.InvalidRequestError("kind must be 'room' or 'equipment'")
        if await self.rt.redis.hget(keys.practice(practice_id), "record") is None:
            raise errors.NotFoundError("practice", practice_id)
        r = Resource(id=ids.new_resource_id(practice_id), practice_id=practice_id, name=name, kind=kind)
        await scripts.resource(self.rt.lua, now_ms=self.rt.now_ms(), practice_id=practice_id, resource=r, ctx=ctx)
        return r

    async def list_all(self, practice_id: str) -> list[Resource]:
        if await self.rt.redis.hget(keys.practice(practice_id), "record") is None:
            raise errors.NotFoundError("practice", practice_id)
        raw = await self.rt.redis.hvals(keys.resources(practice_id))
        return sorted((msgspec.json.decode(r, type=Resource) for r in raw), key=lambda r: r.id)

    async def get(self, resource_id: str) -> Resource:
        pid = resource_practice(resource_id)
        raw = await self.rt.redis.hget(keys.resources(pid), resource_id)
        if raw is None:
            raise errors.NotFoundError("resource", resource_id)
        return msgspec.json.decode(raw, type=Resource)

    async def put_closures(
        self, resource_id: str, closures: list[Closure], ctx: Ctx = SYSTEM
    ) -> tuple[Resource, list[str]]:
        """Replace a resource's closures (the days they touch renewed in the same script); answers the booked
        appointments that now claim it inside a closure (reported, never moved or cancelled)."""
        old = await self.get(resource_id)
        r = msgspec.structs.replace(old, closures=closures, spans=[])
        r.spans = r.closure_spans()
        pid = r.practice_id
        sharers = await self.catalog.room_sharers(pid, fresh=True)  # the time a lifted closure frees: to the waitlist

        async def step(kit: OfferKit) -> bool:
            return await scripts.resource(
                self.rt.lua, now_ms=self.rt.now_ms(), practice_id=pid, resource=r, ctx=ctx, kit=kit
            )

        if sharers:
            await self.offers.run(pid, sharers[0], step)
        else:
            await scripts.resource(self.rt.lua, now_ms=self.rt.now_ms(), practice_id=pid, resource=r, ctx=ctx)
        return r, await self.conflicts(r)

    async def conflicts(self, r: Resource) -> list[str]:
        if not r.spans:
            return []
        lo = min(s for s, _ in r.spans)
        hi = max(e for _, e in r.spans)
        members = await self.rt.redis.zrangebyscore(
            keys.resource_claims(r.practice_id), lo - limits.MAX_DURATION_S, f"({hi}", withscores=True
        )
        out = set()
        for member, score in members:
            rid, kind, ident, end, _ = claim_member(member)
            if rid == r.id and kind == "b" and any(int(score) < ce and end > cs for cs, ce in r.spans):
                out.add(ident)
        return sorted(out)

    async def check_ids(self, practice_id: str, resource_ids: list[str]) -> list[str]:
        """A visit type's resource ids, sorted and without repeats; an unknown one (or another practice's) is 422."""
        wanted = sorted(set(resource_ids))
        if not wanted:
            return []
        found = await self.rt.redis.hmget(keys.resources(practice_id), wanted)
        unknown = [rid for rid, raw in zip(wanted, found, strict=True) if raw is None]
        if unknown:
            raise errors.InvalidRequestError(f"unknown resource {unknown[0]!r}: create it in this practice first")
        return wanted
