"""Typed calls that put durable records back into Redis (reconciliation) without emitting events, and the few
plain writes of global keys that no script may touch (they live outside every practice's hash slot)."""

from __future__ import annotations

import msgspec

from engine import keys
from engine.codec import encoder, text
from engine.model import SYSTEM, Appointment, WaitlistRecord
from engine.scripts.registry import Call, Lua


class Restored(msgspec.Struct, frozen=True):
    """'OK', 'SKIP' (Redis has this version or newer: the payload names it) or 'CONFLICT' (the clashing claims)."""

    status: str
    detail: list[str]


async def restore(
    lua: Lua,
    *,
    now_ms: int,
    appointment: Appointment,
    manage_hash: str,
    updated_ms: int,
    redis_practitioner: str,
    resource_ids: list[str] | None = None,
) -> Restored:
    """Put a durable appointment back; never creates an overlap. ``resource_ids``: the resources it claims (None:
    the ones its visit type needs now)."""
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
            keys.visit_types(pid),
            keys.claim_types(pid, a.practitioner_id),
            keys.resource_claims(pid),
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
            "*" if resource_ids is None else ",".join(resource_ids),
        ],
    )
    return Restored(text(res[0]), [text(x) for x in res[1:]])


async def restore_waitlist(
    lua: Lua, *, now_ms: int, record: WaitlistRecord, live: bool, retention_ms: int, day: tuple[int, int] = (0, 0)
) -> Restored:
    """Put a durable waitlist entry back (``live``: into the queue too); its live offer as its hold when it can
    be. 'OK' with how: 'offered', 'queued', 'stored', 'expired' or 'taken' (the offer could not come back: the
    entry is waiting), or 'SKIP' with the version Redis has. ``day``: the bounds of the offer start's local date
    (its visit type's daily limit counts the claims that start in them)."""
    r, o = record, record.offer
    pid = r.practice_id
    practitioner = o.practitioner_id if o else (r.practitioner_id or "")
    waiting = b"" if o is None else encoder.encode(msgspec.structs.replace(r, status="waiting", offer=None))
    res = await lua.run(
        "restore_waitlist",
        [keys.waitlist_entries(pid), keys.waitlist_queue(pid), keys.waitlist_stats(pid),
         keys.hold(pid, o.hold_id if o else ""), keys.claims(pid, practitioner), keys.hold_expiries(pid),
         keys.versions(pid, practitioner), keys.waitlist_index(pid), keys.waitlist_waiting(pid),
         keys.visit_types(pid), keys.claim_types(pid, practitioner), keys.resources(pid),
         keys.resource_claims(pid)],
        [now_ms, r.id, r.version, r.order, "1" if live else "0", encoder.encode(r), waiting,
         o.hold_id if o else "", o.start if o else 0, o.end if o else 0, o.expires_ms if o else 0, pid,
         practitioner, r.visit_type_id, retention_ms, day[0], day[1]],
    )  # fmt: skip
    return Restored(text(res[0]), [text(res[1])])


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


def lease_call(*, practice_id: str, owner: str, ttl_ms: int) -> Call:
    """Take or renew (``ttl_ms`` > 0) or give back (0) the practice's persister lease. Run by the persisters'
    synchronous client, many per pipeline (persistence/shares.py)."""
    return Call("lease", [keys.persist_lease(practice_id)], [owner, ttl_ms])


async def lease(lua: Lua, call: Call) -> bool:
    """True when ``owner`` holds the lease after the call (or gave it back); False when another owner holds it."""
    return int(await lua.run(call.script, call.keys, call.args)) == 1


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


async def mark_practice(lua: Lua, practice_id: str, now_ms: int) -> None:
    """The practice's marker (written with the practice, and by reconciliation once its data is back): while
    the database knows a practice whose marker is missing, Redis lost that practice's data."""
    await lua.redis.hset(keys.practice_marker(practice_id), mapping={"since_ms": now_ms})


async def forget_client_hold(lua: Lua, client: str, hold_id: str) -> None:
    """A hold that was booked, released or refused no longer counts against its client's cap."""
    await lua.redis.zrem(keys.client_holds(client), hold_id)


async def remember_client_hold(lua: Lua, client: str, hold_id: str, expires_ms: int) -> None:
    """A hold taken off its client's cap by a booking that then failed counts again until ``expires_ms``."""
    key = keys.client_holds(client)
    async with lua.redis.pipeline(transaction=False) as pipe:  # one slot: one round trip on a cluster too
        pipe.zadd(key, {hold_id: expires_ms})
        pipe.pexpireat(key, expires_ms, nx=True)  # the set emptied meanwhile: it lives as long as the hold
        pipe.pexpireat(key, expires_ms, gt=True)  # never shortened for the holds it has
        await pipe.execute()


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
        pipe.zremrangebyscore(keys.resource_claims(pid), "-inf", f"({before - max_duration_s}")  # resources' too
        pipe.hgetall(keys.claim_types(pid, practitioner_id))
        *_, types = await pipe.execute()
    old = [k for k, v in types.items() if int(text(v).rsplit("|", 1)[1]) < before - max_duration_s]
    for i in range(0, len(old), 1000):  # claims that ended long ago no longer count towards any daily limit
        await lua.redis.hdel(keys.claim_types(pid, practitioner_id), *old[i : i + 1000])
