"""Typed calls of the setup, schedule, search and abuse-limit scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from engine import errors, keys
from engine.codec import encoder
from engine.model import SYSTEM, Ctx
from engine.scripts.registry import Call, Lua, Ref, fail, reply
from engine.scripts.waitlist import OfferKit, kit_args, kit_keys


async def put_entity(
    lua: Lua, *, now_ms: int, practice_id: str, key: str, field: str, record: Any, event: str, ctx: Ctx
) -> None:
    """Store one setup record (practice, practitioner, visit type) and append its event."""
    await lua.run(
        "put_entity",
        [key, keys.events(practice_id), keys.audit(practice_id)],
        [now_ms, field, encoder.encode(record), event, ctx.actor, ctx.request_id, practice_id, ""],
    )


async def resource(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    resource: Any,
    ctx: Ctx,
    restore: bool = False,
    kit: OfferKit | None = None,
) -> bool:
    """Store a resource (created, or its closures replaced) and append its event; the days its old and new
    closures touch are renewed in the same step. ``restore``: put back a record Redis lost (False: it is there).
    ``kit``: one practitioner's waitlist kit carrying all the others: the time an old closure covered is offered to
    waiting entries first (OfferKitError when the script refused it)."""
    pid = practice_id
    res = reply(
        await lua.run(
            "resource",
            [keys.resources(pid), keys.events(pid), keys.versions(pid, ""), *(kit_keys(pid, kit) if kit else [])],
            [
                now_ms,
                resource.id,
                encoder.encode(resource),
                ctx.actor,
                ctx.request_id,
                pid,
                "restore" if restore else "",
                *(kit_args(pid, kit) if kit else []),
            ],
        )
    )
    if res[0] != "OK" and res[0] != "SKIP":
        fail(res, Ref("resource", resource.id))
    return bool(res[0] == "OK")


async def schedule(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    practitioner_id: str,
    schedule_json: bytes,
    min_notice_s: int,
    horizon_s: int,
    detail: dict[str, Any],
    ctx: Ctx,
    restore: bool = False,
) -> int:
    """Store a schedule and start a new generation; returns it (0: ``restore`` found a live schedule)."""
    pid = practice_id
    gen = await lua.run(
        "schedule",
        [keys.schedule(pid, practitioner_id), keys.events(pid), keys.audit(pid), keys.versions(pid, practitioner_id)],
        [
            now_ms,
            schedule_json,
            min_notice_s,
            horizon_s,
            pid,
            practitioner_id,
            ctx.actor,
            ctx.request_id,
            encoder.encode(detail),
            "restore" if restore else "",
        ],
    )
    return int(gen)


class DayPlan:
    """One local day of a practitioner: its bounds and, per visit type, the slot starts it offers."""

    __slots__ = ("end", "start", "starts")

    def __init__(self, start: int, end: int, starts: list[list[int]]) -> None:
        self.start, self.end, self.starts = start, end, starts


APPLY_DAY_CONCURRENCY = 16  # calls in flight at once on a Redis Cluster
# Days per pipeline on a single Redis. A 730-day horizon sent as one pipeline wrote megabytes before reading a
# reply: while Redis ran the first days' scripts the socket buffers filled, and on a busy host the write waited
# past the client's 2 s socket timeout (a 503 for the PUT). A month at a time keeps each write small.
APPLY_DAY_BATCH = 31


async def apply_day(
    lua: Lua,
    *,
    practice_id: str,
    practitioner_id: str,
    visit_type_ids: Sequence[str],
    gen: str,
    days: list[DayPlan],
    kits: Sequence[OfferKit] | None = None,
    now_ms: int = 0,
    ctx: Ctx = SYSTEM,
) -> None:
    """Replace each day's slot starts (one atomic script per day); raises StaleScheduleError when a newer
    schedule generation exists. ``kits``: one waitlist kit per day (the starts a day adds are offered to waiting
    entries first; without kits, a practice whose entries wait answers OfferKitError: every day may be sent again,
    a day applied twice changes nothing). Pipelines of ``APPLY_DAY_BATCH`` days on a single Redis; a cluster
    pipeline refuses EVALSHA, so on a Redis Cluster the calls run concurrently, at most ``APPLY_DAY_CONCURRENCY``
    at once."""
    pid = practice_id
    base_keys = [
        keys.schedule(pid, practitioner_id),
        keys.versions(pid, practitioner_id),
        *(keys.base(pid, practitioner_id, v) for v in visit_type_ids),
    ]
    calls: list[tuple[list[str], list[Any]]] = []
    for i, day in enumerate(days):
        kit = kits[i] if kits is not None else None
        args: list[Any] = [gen, day.start, day.end, len(visit_type_ids), now_ms, ctx.actor, ctx.request_id]
        for starts in day.starts:
            args.append(len(starts))
            args.extend(starts)
        calls.append(([*base_keys, *kit_keys(pid, kit)], [*args, *kit_args(pid, kit)]))
    if lua.cluster:
        limit = asyncio.Semaphore(APPLY_DAY_CONCURRENCY)

        async def one(call: tuple[list[str], list[Any]]) -> Any:
            async with limit:
                return await lua.run("apply_day", *call)

        results = await asyncio.gather(*(one(call) for call in calls))
    else:
        results = []
        for at in range(0, len(calls), APPLY_DAY_BATCH):
            async with lua.redis.pipeline(transaction=False) as pipe:
                for call_keys, args in calls[at : at + APPLY_DAY_BATCH]:
                    await lua.run("apply_day", call_keys, args, client=pipe)
                results.extend(await pipe.execute())
    replies = [reply(res) for res in results]
    for r in sorted(replies, key=lambda r: r[0] != "STALE"):  # a newer generation wins over a kit to send again
        if r[0] != "OK":
            fail(r, Ref("schedule of practitioner", practitioner_id))


async def api_key(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    action: str,
    key_id: str,
    key_hash: str = "",
    record: bytes = b"",
    ctx: Ctx,
) -> bool:
    """Create, revoke or restore a staff key. Returns False when 'restore' found the key already there."""
    pid = practice_id
    res = reply(
        await lua.run(
            "api_key",
            [
                keys.api_keys(pid),
                keys.api_key_hashes(pid),
                keys.events(pid),
                keys.audit(pid),
                keys.api_key_tombstones(pid),
            ],
            [now_ms, action, key_id, key_hash, record, ctx.actor, ctx.request_id, pid],
        )
    )
    if res[0] in ("OK", "SKIP"):
        return bool(res[0] == "OK")
    fail(res, Ref("api key", key_id))


async def app_key(
    lua: Lua,
    *,
    now_ms: int,
    action: str,
    key_id: str,
    key_hash: str = "",
    record: bytes = b"",
    tombstone: bool = False,
) -> bool:
    """Create, revoke or restore an app key. True when it changed something; False for a restore that found the key
    there or revoked, and for a revoke that found no live key when ``tombstone`` (the database revoked it: the
    tombstone is recorded all the same); otherwise NotFoundError when revoking one that is not live."""
    res = reply(
        await lua.run(
            "app_key",
            [keys.APP_KEYS, keys.APP_KEY_HASHES, keys.APP_KEY_TOMBSTONES],
            [now_ms, action, key_id, key_hash, record, "1" if tombstone else "0"],
        )
    )
    if res[0] == "OK":
        return True
    if res[0] == "SKIP" or (res[0] == "NOT_FOUND" and tombstone):
        return False
    fail(res, Ref("app key", key_id))


async def limit(
    lua: Lua,
    *,
    now_ms: int,
    client: str,
    action: str,
    per_minute: int,
    live_holds: int,
    hold_ttl_ms: int,
    member: str,
    forget: str = "",
) -> tuple[int, int, int]:
    """Record one request of a public client; raise LimitExceededError when it is over a limit. Returns the
    requests left in the window, the ms until the oldest counted leaves it (RateLimit-Remaining, -Reset), and
    the expiry (ms) of the hold ``forget`` taken off the client's live holds when the request counted (0: it was
    not among them)."""
    res = reply(
        await lua.run(
            "limit",
            [keys.client_requests(client, action), keys.client_holds(client)],
            [now_ms, 60_000, per_minute, live_holds, hold_ttl_ms, member, forget],
        )
    )
    if res[0] == "OK":
        return int(res[1]), int(res[2]), int(res[3])
    if res[0] == "HOLDS":
        raise errors.LimitExceededError.holds(live_holds, int(res[1]))
    raise errors.LimitExceededError.rate(per_minute, action, int(res[1]))


def search_call(
    *,
    now_ms: int,
    practice_id: str,
    practitioner_ids: Sequence[str],
    visit_type_id: str,
    start: int,
    end: int,
    duration_s: int,
    detail: dict[str, Any],
    audit: bool,
    ctx: Ctx,
    buckets: tuple[int, int] = (0, -1),
    roster: int | None = None,
    days: Sequence[tuple[int, int]] = (),
) -> Call:
    """``days``: the bounds of each local date asked (a visit type's daily limit counts claims per date; none:
    the limit is not applied); ``buckets``: the first and last version bucket whose counters the answer reports
    (none by default);
    ``roster``: how many practitioners the practice has as the caller knows it (the script answers 'ROSTER',
    ``RosterChanged``, when it has more: the caller's list is outdated)."""
    pid = practice_id
    script_keys: list[str] = []
    for pr in practitioner_ids:
        script_keys += [
            keys.base(pid, pr, visit_type_id),
            keys.claims(pid, pr),
            keys.schedule(pid, pr),
            keys.versions(pid, pr),
        ]
    script_keys += [
        keys.events(pid),
        keys.audit(pid),
        keys.waitlist_queue(pid),
        keys.practitioners(pid),
        keys.visit_types(pid),
        *(keys.claim_types(pid, pr) for pr in practitioner_ids),
        keys.resources(pid),
        keys.resource_claims(pid),
    ]
    return Call(
        "search",
        script_keys,
        [
            now_ms,
            start,
            end,
            duration_s,
            len(practitioner_ids),
            ctx.actor,
            ctx.request_id,
            pid,
            encoder.encode(detail),
            "1" if audit else "0",
            buckets[0],
            buckets[1],
            "" if roster is None else roster,
            visit_type_id,
            len(days),
            *(b for day in days for b in day),
        ],
    )


class RosterChanged(Exception):
    """The search script found more practitioners than the caller named: a practitioner was added since the
    caller read the list (search contexts are kept per process; engine/catalog.py)."""


class Found(msgspec.Struct, frozen=True):
    """Per practitioner, in the order asked: the free starts, and {valid_until_ms, version 'all', the versions
    of the asked buckets} (the answer is right while no version moves and now_ms < valid_until_ms; 0: always)."""

    starts: list[list[int]]
    meta: list[list[int]]


async def search(lua: Lua, call: Call, send: Callable[[Call], Awaitable[Any]] | None = None) -> Found:
    """Free slot starts of each practitioner in [start, end), in the order given, and one audited 'search'
    (``search_call``). ``send``: how the call reaches Redis (default ``lua.run``; the searches of one process go
    through an ``engine.redis.batching.Coalescer``)."""
    if call.script != "search":
        raise TypeError(f"a {call.script} call was passed to search")
    found: list[list[int]] | bytes = await (lua.run("search", call.keys, call.args) if send is None else send(call))
    if isinstance(found, bytes | str):  # 'ROSTER'
        raise RosterChanged()
    n = len(found) // 2
    return Found(found[:n], found[n:])
