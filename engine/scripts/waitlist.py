"""Typed calls of the waitlist scripts (join, decline, leave) and the waitlist kit that every script freeing an
interval carries (docs/waitlist.md, lua/_prelude.lua ``wl_kit``)."""

from __future__ import annotations

from typing import Any

import msgspec

from engine import errors, keys, limits
from engine.codec import text
from engine.model import Ctx, WaitlistRecord
from engine.scripts.registry import Call, Lua, Ref, fail, reply

DAY_S = 86400  # the index's UTC day buckets (lua/_prelude.lua DAY_S)

OFFER_IDS = limits.OFFERS_PER_INTERVAL  # fresh hold ids per freed interval: at most this many offers out of each


class OfferKit(msgspec.Struct, frozen=True):
    """What a freeing script needs to make offers for one practitioner: every visit type of the practice (its
    length in seconds; the script refuses a kit that lacks one, 'KIT'), fresh hold ids of that practitioner (the
    offers' hold keys go in KEYS), the offer's lifetime and the hold hash's retention after it, and the practice
    zone's offsets over the horizon (``timeutil.offset_table``: an offer's daily limit counts by its local date;
    empty: no offer of a visit type with a daily limit is made)."""

    practitioner_id: str
    visit_types: tuple[tuple[str, int], ...]
    hold_ids: tuple[str, ...]
    offer_ms: int
    retention_ms: int
    zone: tuple[tuple[int, int], ...] = ()
    # The practice's other practitioners, each with fresh hold ids of its own, when the practice has rooms or
    # equipment: a claim freeing one may free their starts too (lua/_prelude.lua offer_freed). Empty: none.
    others: tuple[tuple[str, tuple[str, ...]], ...] = ()


def kit_keys(practice_id: str, kit: OfferKit | None) -> list[str]:
    pid = practice_id
    head = [keys.waitlist_queue(pid), keys.waitlist_entries(pid), keys.waitlist_stats(pid), keys.visit_types(pid),
            keys.events(pid), keys.audit(pid), keys.waitlist_index(pid), keys.waitlist_waiting(pid),
            keys.resources(pid), keys.resource_claims(pid)]  # fmt: skip
    if kit is None:
        return head
    pr = kit.practitioner_id
    return [
        *head,
        keys.schedule(pid, pr),
        keys.claims(pid, pr),
        keys.versions(pid, pr),
        keys.hold_expiries(pid),
        *(keys.base(pid, pr, vt) for vt, _ in kit.visit_types),
        *(keys.hold(pid, h) for h in kit.hold_ids),
        keys.claim_types(pid, pr),  # daily limits (lua/_prelude.lua wl_kit)
        *(k for other, hold_ids in kit.others for k in _other_keys(pid, kit, other, hold_ids)),
    ]


def _other_keys(pid: str, kit: OfferKit, pr: str, hold_ids: tuple[str, ...]) -> list[str]:
    return [
        keys.schedule(pid, pr),
        keys.claims(pid, pr),
        keys.versions(pid, pr),
        *(keys.base(pid, pr, vt) for vt, _ in kit.visit_types),
        *(keys.hold(pid, h) for h in hold_ids),
        keys.claim_types(pid, pr),
    ]


def kit_args(practice_id: str, kit: OfferKit | None) -> list[Any]:
    if kit is None:
        return [practice_id, "", 0, 0, 0, 0, 0, 0]  # no visit types, hold ids, zone offsets, other practitioners
    args: list[Any] = [practice_id, kit.practitioner_id, kit.offer_ms, kit.retention_ms, len(kit.visit_types)]
    for vt, dur in kit.visit_types:
        args += [vt, dur]
    args += [len(kit.hold_ids), *kit.hold_ids, len(kit.zone), *(x for pair in kit.zone for x in pair)]
    args.append(len(kit.others))
    for other, hold_ids in kit.others:
        args += [other, len(hold_ids), *hold_ids]
    return args


class Left(msgspec.Struct, frozen=True):
    """The result of decline or leave: the entry's version afterwards; ``already``: leave changed nothing (the
    entry had left or was booked: ``status``)."""

    version: int
    already: bool = False
    status: str = ""


class JoinCaps(msgspec.Struct, frozen=True):
    """The caps on live entries a join is checked against (0: none); ``client``: the joining public client or app
    end user (a pseudonymous reference; None: staff, admin, the engine, not capped per client)."""

    per_practice: int = 0
    per_client: int = 0
    client: str | None = None


NO_CAPS = JoinCaps()


def join_call(*, now_ms: int, practice_id: str, entry_id: str, record: bytes, ctx: Ctx, caps: JoinCaps) -> Call:
    pid = practice_id
    return Call(
        "waitlist_join",
        [keys.waitlist_queue(pid), keys.waitlist_entries(pid), keys.waitlist_stats(pid), keys.events(pid),
         keys.audit(pid), keys.waitlist_index(pid), keys.waitlist_waiting(pid),
         keys.waitlist_client(pid, caps.client or "-")],
        [now_ms, entry_id, record, ctx.actor, ctx.request_id, caps.per_practice, caps.per_client, caps.client or ""],
        Ref("waitlist entry", entry_id),
    )  # fmt: skip


async def waitlist_join(
    lua: Lua, *, now_ms: int, practice_id: str, entry_id: str, record: bytes, ctx: Ctx, caps: JoinCaps = NO_CAPS
) -> int:
    """Store a new entry (``record``: the encoded WaitlistRecord, patient last); returns its join order. A cap
    reached: WaitlistFullError (practice) or WaitlistClientFullError (client), nothing stored."""
    call = join_call(now_ms=now_ms, practice_id=practice_id, entry_id=entry_id, record=record, ctx=ctx, caps=caps)
    res = reply(await lua.run(call.script, call.keys, call.args))
    if res[0] == "OK":
        return int(res[1])
    if res[0] == "FULL":
        if text(res[1]) == "client":
            raise errors.WaitlistClientFullError(int(res[2]))
        raise errors.WaitlistFullError(int(res[2]))
    fail(res, call.ref)


def index_members(rec: WaitlistRecord) -> list[str]:
    """The entry's members of the index (lua/_prelude.lua ``wl_index``: one per UTC day its spans touch)."""
    days: list[int] = []
    for s, e in rec.spans:
        first, last = s // DAY_S, (e - 1) // DAY_S
        if days and first <= days[-1]:
            first = days[-1] + 1
        days.extend(range(first, last + 1))
    tail = f"|{rec.practitioner_id or '*'}|{rec.order:012d}|{rec.id}"
    return [f"{rec.visit_type_id}|{d}{tail}" for d in days]


def waiting_member(rec: WaitlistRecord) -> str:
    """The entry's member of the waiting set (lua/_prelude.lua ``wl_waiting``)."""
    return f"{rec.visit_type_id}|{rec.order:012d}|{rec.id}"


async def _offer_change(
    lua: Lua, name: str, *, now_ms: int, practice_id: str, entry_id: str, hold_id: str, kit: OfferKit | None, ctx: Ctx
) -> Left | None:
    pid = practice_id
    res = reply(
        await lua.run(
            name,
            [keys.hold(pid, hold_id or "-"), *kit_keys(pid, kit)],
            [now_ms, entry_id, hold_id, ctx.actor, ctx.request_id, *kit_args(pid, kit)],
        )
    )
    if res[0] == "OK":
        return Left(int(res[1]))
    if res[0] == "ALREADY":
        return Left(0, already=True, status=text(res[1]))
    if res[0] == "RETRY":
        return None
    fail(res, Ref("waitlist entry", entry_id, hold_id))


async def waitlist_decline(
    lua: Lua, *, now_ms: int, practice_id: str, entry_id: str, hold_id: str, kit: OfferKit | None, ctx: Ctx
) -> Left | None:
    """Give the entry's live offer (``hold_id``, as the caller read it) up; None: the caller read another offer
    (read again). The kit is the offer's practitioner's."""
    return await _offer_change(
        lua, "waitlist_decline", now_ms=now_ms, practice_id=practice_id, entry_id=entry_id, hold_id=hold_id, kit=kit,
        ctx=ctx,
    )  # fmt: skip


async def waitlist_leave(
    lua: Lua, *, now_ms: int, practice_id: str, entry_id: str, hold_id: str, kit: OfferKit | None, ctx: Ctx
) -> Left | None:
    """The entry leaves ('left'); ``hold_id``: its live offer as the caller read it ('' none; the kit then may be
    None). None: the caller read another offer (read again)."""
    return await _offer_change(
        lua, "waitlist_leave", now_ms=now_ms, practice_id=practice_id, entry_id=entry_id, hold_id=hold_id, kit=kit,
        ctx=ctx,
    )  # fmt: skip


async def drop_from_queue(lua: Lua, practice_id: str, records: list[WaitlistRecord]) -> None:
    """Drop entries whose window passed from the queue, the index and the waiting set (plain writes: nothing can
    offer to them any more, they read 'ended'; no event)."""
    if not records:
        return
    pid = practice_id
    async with lua.redis.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.waitlist_queue(pid), *(r.id for r in records))
        pipe.zrem(keys.waitlist_index(pid), *(m for r in records for m in index_members(r)))
        pipe.zrem(keys.waitlist_waiting(pid), *(waiting_member(r) for r in records))
        await pipe.execute()


async def waitlist_reindex(lua: Lua, practice_id: str) -> int:
    """Index the practice's live entries once (entries that joined before the index existed); 0 once done."""
    pid = practice_id
    ks = [keys.waitlist_queue(pid), keys.waitlist_entries(pid), keys.waitlist_stats(pid), keys.waitlist_index(pid),
          keys.waitlist_waiting(pid)]  # fmt: skip
    return int(await lua.run("waitlist_reindex", ks, []))


def waitlist_tidy_call(*, practice_id: str, entry_id: str, stored_version: int, now_ms: int) -> Call:
    """Take an ended entry out of Redis when the database holds ``stored_version`` (persistence/waitlist_tidy.py;
    also run by the persister's synchronous client)."""
    pid = practice_id
    return Call(
        "waitlist_tidy",
        [keys.waitlist_entries(pid), keys.waitlist_queue(pid), keys.waitlist_index(pid), keys.waitlist_waiting(pid)],
        [entry_id, stored_version, now_ms],
        Ref("waitlist entry", entry_id),
    )


async def waitlist_tidy(lua: Lua, *, practice_id: str, entry_id: str, stored_version: int, now_ms: int) -> bool:
    """``waitlist_tidy_call`` run on the async client: whether the entry left Redis."""
    call = waitlist_tidy_call(practice_id=practice_id, entry_id=entry_id, stored_version=stored_version, now_ms=now_ms)
    return text(reply(await lua.run(call.script, call.keys, call.args))[0]) == "OK"


async def waitlist_offer_free(
    lua: Lua, *, now_ms: int, practice_id: str, start: int, end: int, actor: str, exclude: str, kit: OfferKit
) -> int:
    """Offer the kit's practitioner's interval [start, end), freed with no script freeing it, to the waiting
    entries (reconciliation); returns the offers made (at most OFFER_IDS)."""
    pid = practice_id
    args = [now_ms, start, end, actor, exclude, *kit_args(pid, kit)]
    res = reply(await lua.run("waitlist_offer_free", kit_keys(pid, kit), args))
    if res[0] == "OK":
        return int(res[1])
    fail(res, Ref("practice", pid))


async def waitlist_counters(lua: Lua, practice_id: str, counts: dict[str, int]) -> int:
    """Raise the practice's waitlist counters (T:wl:stats) to at least ``counts``; returns how many were raised."""
    args = [x for field, n in sorted(counts.items()) for x in (field, n)]
    return int(await lua.run("waitlist_counters", [keys.waitlist_stats(practice_id)], args))
