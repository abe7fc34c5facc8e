"""Typed calls of the waitlist scripts (join, decline, leave) and the waitlist kit that every script freeing an
interval carries (docs/waitlist.md, lua/_prelude.lua ``wl_kit``)."""

from __future__ import annotations

from typing import Any

import msgspec

from engine import keys, limits
from engine.codec import text
from engine.model import Ctx
from engine.scripts.registry import Lua, Ref, fail, reply

OFFER_IDS = limits.OFFERS_PER_INTERVAL  # fresh hold ids per freed interval: at most this many offers out of each


class OfferKit(msgspec.Struct, frozen=True):
    """What a freeing script needs to make offers for one practitioner: every visit type of the practice (its
    length in seconds; the script refuses a kit that lacks one, 'KIT'), fresh hold ids of that practitioner (the
    offers' hold keys go in KEYS), the offer's lifetime and the hold hash's retention after it."""

    practitioner_id: str
    visit_types: tuple[tuple[str, int], ...]
    hold_ids: tuple[str, ...]
    offer_ms: int
    retention_ms: int


def kit_keys(practice_id: str, kit: OfferKit | None) -> list[str]:
    pid = practice_id
    head = [keys.waitlist_queue(pid), keys.waitlist_entries(pid), keys.waitlist_stats(pid), keys.visit_types(pid),
            keys.events(pid), keys.audit(pid)]  # fmt: skip
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
    ]


def kit_args(practice_id: str, kit: OfferKit | None) -> list[Any]:
    if kit is None:
        return [practice_id, "", 0, 0, 0, 0]
    args: list[Any] = [practice_id, kit.practitioner_id, kit.offer_ms, kit.retention_ms, len(kit.visit_types)]
    for vt, dur in kit.visit_types:
        args += [vt, dur]
    return [*args, len(kit.hold_ids), *kit.hold_ids]


class Left(msgspec.Struct, frozen=True):
    """The result of decline or leave: the entry's version afterwards; ``already``: leave changed nothing (the
    entry had left or was booked: ``status``)."""

    version: int
    already: bool = False
    status: str = ""


async def waitlist_join(lua: Lua, *, now_ms: int, practice_id: str, entry_id: str, record: bytes, ctx: Ctx) -> int:
    """Store a new entry (``record``: the encoded WaitlistRecord, patient last); returns its join order."""
    pid = practice_id
    res = reply(
        await lua.run(
            "waitlist_join",
            [keys.waitlist_queue(pid), keys.waitlist_entries(pid), keys.waitlist_stats(pid), keys.events(pid),
             keys.audit(pid)],
            [now_ms, entry_id, record, ctx.actor, ctx.request_id],
        )
    )  # fmt: skip
    if res[0] == "OK":
        return int(res[1])
    fail(res, Ref("waitlist entry", entry_id))


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


async def drop_from_queue(lua: Lua, practice_id: str, entry_ids: list[str]) -> None:
    """Drop entries whose window passed from the queue (a plain write: nothing can offer to them any more, they
    read 'ended'; no event)."""
    if entry_ids:
        await lua.redis.zrem(keys.waitlist_queue(practice_id), *entry_ids)
