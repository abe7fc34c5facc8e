"""Typed calls that put durable records back into Redis (reconciliation) without emitting events, and the few
plain writes of global keys that no script may touch (they live outside every practice's hash slot)."""

from __future__ import annotations

import msgspec

from engine import keys
from engine.codec import encoder, text
from engine.model import SYSTEM, Appointment
from engine.scripts.registry import Call, Lua


class Restored(msgspec.Struct, frozen=True):
    """'OK', 'SKIP' (Redis has this version or newer: the payload names it) or 'CONFLICT' (the clashing claims)."""

    status: str
    detail: list[str]


async def restore(
    lua: Lua, *, now_ms: int, appointment: Appointment, manage_hash: str, updated_ms: int, redis_practitioner: str
) -> Restored:
    """Put a durable appointment back; never creates an overlap."""
    a = appointment
    pid = a.practice_id
    res = await lua.run(
        "restore",
        [
            keys.appointment(pid, a.id),
            keys.claims(pid, a.practitioner_id),
            keys.claims(pid, redis_practitioner),
            keys.versions(pid, a.practitioner_id),
            keys.versions(pid, redis_practitioner),
        ],
        [
            now_ms,
            a.id,
            a.status,
            a.version,
            pid,
            a.practitioner_id,
            a.visit_type_id,
            a.start,
            a.end,
            encoder.encode(a.patient),
            manage_hash,
            a.hold_id or "",
            a.cancel_reason or "",
            updated_ms,
        ],
    )
    return Restored(text(res[0]), [text(x) for x in res[1:]])


def restore_seq_call(*, practice_id: str, last_seq: int) -> Call:
    """(Also run by the persister's synchronous client: the persister raises a counter that went back.)"""
    return Call("restore_seq", [keys.audit(practice_id)], [last_seq])


def restore_seq_reply(raw: object) -> int | None:
    have = int(str(raw))
    return None if have < 0 else have


async def restore_seq(lua: Lua, *, practice_id: str, last_seq: int) -> int | None:
    """Number new audit events after ``last_seq``; returns the sequence Redis had when it was behind."""
    call = restore_seq_call(practice_id=practice_id, last_seq=last_seq)
    return restore_seq_reply(await lua.run(call.script, call.keys, call.args))


async def restore_entity(lua: Lua, *, practice_id: str, key: str, field: str, record: object) -> bool:
    """Put back a setup record Redis lacks (never replaces one); True when it was missing."""
    res = await lua.run(
        "put_entity",
        [key, keys.events(practice_id), keys.audit(practice_id)],
        [0, field, encoder.encode(record), "", SYSTEM.actor, "", practice_id, "restore"],
    )
    return text(res[0]) == "OK"


# ----------------------------------------------------------------- plain writes of global keys
async def add_practice(lua: Lua, practice_id: str) -> None:
    """List a practice for the sweepers and the persister (before its record exists: loops skip such ids)."""
    await lua.redis.sadd(keys.PRACTICES, practice_id)


async def mark_reconciled(lua: Lua, now_ms: int) -> None:
    await lua.redis.hset(keys.META, mapping={"reconciled_at_ms": now_ms})


async def forget_client_hold(lua: Lua, client: str, hold_id: str) -> None:
    """A hold that was booked, released or refused no longer counts against its client's cap."""
    await lua.redis.zrem(keys.client_holds(client), hold_id)


async def trim_past(
    lua: Lua, *, practice_id: str, practitioner_id: str, visit_type_ids: list[str], before: int, max_duration_s: int
) -> None:
    """Drop slot starts before ``before`` and claims that can no longer overlap anything (they started more than
    the longest visit before it). Nothing live is touched."""
    pid = practice_id
    async with lua.redis.pipeline(transaction=False) as pipe:
        for vt in visit_type_ids:
            pipe.zremrangebyscore(keys.base(pid, practitioner_id, vt), "-inf", f"({before}")
        pipe.zremrangebyscore(keys.claims(pid, practitioner_id), "-inf", f"({before - max_duration_s}")
        await pipe.execute()
