"""Practice staff API keys and the abuse limits of public clients."""

from __future__ import annotations

import secrets
import time
import uuid
from collections import OrderedDict, deque
from typing import Any

import msgspec

from engine import errors, ids, keys, scripts
from engine.codec import encoder
from engine.codec import text as codec_text
from engine.model import SYSTEM, ApiKey, AppKey, Ctx
from engine.redis import clients
from engine.service import BookingEngine


class Limits(msgspec.Struct, frozen=True):
    live_holds: int = 5
    holds_per_minute: int = 30
    bookings_per_minute: int = 10


def new_key(practice_id: str) -> str:
    return f"bks_{practice_id}_{secrets.token_urlsafe(32)}"


def practice_of_key(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "bks":
        return None
    return ids.practice_of(parts[1], "p")


async def create_key(eng: BookingEngine, practice_id: str, ctx: Ctx = SYSTEM) -> tuple[ApiKey, str]:
    await eng.get_practice(practice_id)
    token = new_key(practice_id)
    key = ApiKey(
        id=f"k{secrets.token_hex(8)}", practice_id=practice_id, hash=ids.token_hash(token), created_ms=eng.now_ms()
    )
    await scripts.api_key(
        eng.lua,
        now_ms=eng.now_ms(),
        practice_id=practice_id,
        action="create",
        key_id=key.id,
        key_hash=key.hash,
        record=encoder.encode(key),
        ctx=ctx,
    )
    return key, token


async def revoke_key(eng: BookingEngine, practice_id: str, key_id: str, ctx: Ctx = SYSTEM) -> None:
    await scripts.api_key(
        eng.lua, now_ms=eng.now_ms(), practice_id=practice_id, action="revoke", key_id=key_id, ctx=ctx
    )


async def restore_key(eng: BookingEngine, key: ApiKey) -> bool:
    """Put back a live staff key that Redis lacks (reconciliation); True when it was missing."""
    return await scripts.api_key(
        eng.lua,
        now_ms=eng.now_ms(),
        practice_id=key.practice_id,
        action="restore",
        key_id=key.id,
        key_hash=key.hash,
        record=encoder.encode(key),
        ctx=SYSTEM,
    )


async def lookup_key(eng: BookingEngine, token: str) -> ApiKey | None:
    """The live key behind a presented token, or None (unknown or revoked)."""
    pid = practice_of_key(token)
    if pid is None:
        return None
    key_id = await eng.redis.hget(keys.api_key_hashes(pid), ids.token_hash(token))
    if key_id is None:
        return None
    raw = await eng.redis.hget(keys.api_keys(pid), key_id)
    return msgspec.json.decode(raw, type=ApiKey) if raw else None


APP_KEY_PREFIX = "bka_"


async def new_app_key(eng: BookingEngine, name: str, practice_ids: list[str] | None) -> tuple[AppKey, str]:
    """A new app key for the listed practices (None: all), not yet stored; each listed practice must exist. The
    key is returned once, here; only its SHA-256 is ever stored."""
    for pid in practice_ids or ():
        await eng.get_practice(pid)
    key_id = f"a{secrets.token_hex(8)}"
    token = f"{APP_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    key = AppKey(id=key_id, name=name, practice_ids=practice_ids, hash=ids.token_hash(token), created_ms=eng.now_ms())
    return key, token


async def save_app_key(eng: BookingEngine, key: AppKey) -> None:
    """Make a new key live in Redis (the database holds it first: api/routes/app_keys.py)."""
    await scripts.app_key(
        eng.lua, now_ms=eng.now_ms(), action="create", key_id=key.id, key_hash=key.hash, record=encoder.encode(key)
    )


async def revoke_app_key(eng: BookingEngine, key_id: str, tombstone: bool = False) -> bool:
    """Revoke at once: the next request with it is a 401. NotFoundError when no such key is live, unless
    ``tombstone`` (the database revoked it): then False, and the revocation is recorded in Redis all the same."""
    return await scripts.app_key(eng.lua, now_ms=eng.now_ms(), action="revoke", key_id=key_id, tombstone=tombstone)


async def restore_app_key(eng: BookingEngine, key: AppKey) -> bool:
    """Put back a live app key that Redis lacks (reconciliation); True when it was missing. A key revoked in Redis
    meanwhile stays revoked."""
    return await scripts.app_key(
        eng.lua, now_ms=eng.now_ms(), action="restore", key_id=key.id, key_hash=key.hash, record=encoder.encode(key)
    )


async def app_key_record(eng: BookingEngine, key_id: str) -> AppKey | None:
    """The live key ``key_id`` as Redis holds it, or None."""
    raw = await eng.redis.hget(keys.APP_KEYS, key_id)
    return msgspec.json.decode(raw, type=AppKey) if raw else None


async def live_app_keys(eng: BookingEngine) -> dict[str, AppKey]:
    """Every live app key Redis holds, by id (reconciliation)."""
    raw = await eng.redis.hgetall(keys.APP_KEYS)
    return {codec_text(k): msgspec.json.decode(v, type=AppKey) for k, v in raw.items()}


async def lookup_app_key(eng: BookingEngine, token: str) -> AppKey | None:
    """The live app key behind a presented token, or None (not an app key, unknown or revoked)."""
    if not token.startswith(APP_KEY_PREFIX):
        return None
    key_id = await eng.redis.hget(keys.APP_KEY_HASHES, ids.token_hash(token))
    if key_id is None:
        return None
    raw = await eng.redis.hget(keys.APP_KEYS, key_id)
    return msgspec.json.decode(raw, type=AppKey) if raw else None


class Quota(msgspec.Struct, frozen=True):
    """Where a caller stands after a request that counted: the IETF RateLimit fields (limit, requests left in
    the window, seconds until the oldest counted request leaves it), and whether Redis counted it."""

    limit: int
    remaining: int
    reset_s: int
    in_redis: bool = True
    forgot_ms: int = 0  # the expiry of the hold this request took off the client's live holds (0: none)


async def check_limit(
    eng: BookingEngine,
    limits: Limits,
    client: str,
    action: str,
    hold_id: str | None = None,
    local: LocalLimits | None = None,
    forget: str = "",
) -> Quota:
    """Record one request of a public client; raise LimitExceededError when it is over a limit. The quota left;
    ``in_redis`` False when Redis did not answer and ``local`` counted it instead (without ``local``: raises).
    ``forget``: a hold the request books, taken off the client's live holds in the same step when the request
    counts (``forgot_ms``: its expiry; ``remember_hold`` puts it back if the booking then fails)."""
    now_ms, member, ttl_ms = int(time.time() * 1000), hold_id or uuid.uuid4().hex, eng.settings.hold_ttl_seconds * 1000
    per_minute = limits.holds_per_minute if action == "hold" else limits.bookings_per_minute
    try:
        left, reset_ms, forgot_ms = await scripts.limit(
            eng.lua,
            now_ms=now_ms,
            client=client,
            action=action,
            per_minute=per_minute,
            live_holds=limits.live_holds if action == "hold" else 0,
            hold_ttl_ms=ttl_ms,
            member=member,
            forget=forget,
        )
    except clients.UNREACHABLE:
        if local is None:
            raise
        left, reset_ms = local.check(limits, client, action, now_ms, ttl_ms, member)
        return Quota(per_minute, left, errors.seconds_up(reset_ms), in_redis=False)
    return Quota(per_minute, left, errors.seconds_up(reset_ms), forgot_ms=forgot_ms)


async def forget_hold(eng: BookingEngine, client: str, hold_id: str) -> None:
    """A hold that was booked, released or refused no longer counts against its client's cap."""
    await scripts.forget_client_hold(eng.lua, client, hold_id)


async def remember_hold(eng: BookingEngine, client: str, hold_id: str, expires_ms: int) -> None:
    """A hold a booking's limit call took off its client's cap (``Quota.forgot_ms``) counts again: the booking
    failed. Nothing is put back once the hold's time is up."""
    if expires_ms > int(time.time() * 1000):
        await scripts.remember_client_hold(eng.lua, client, hold_id, expires_ms)


WINDOW_MS = 60_000


class LocalLimits:
    """The abuse limits counted in this process alone: the stand-in while Redis cannot count them.

    On a Redis Cluster a public client's counters (``{c:<address>}``) live on one shard. While that shard has no
    primary, the limit check fails although the practice asked about may be on a healthy shard; rather than
    refuse that client everywhere (503), each API process counts the client's requests itself, with the same
    limits and the same sliding window as ``lua/limit.lua``, until the shard is back (then Redis counts again,
    from what it had). Per process: with N processes a client gets at most N times the limits meanwhile.
    At most ``max_clients`` clients are remembered (the least recently seen are forgotten first)."""

    def __init__(self, max_clients: int = 20_000) -> None:
        self.max_clients = max_clients
        self._requests: OrderedDict[tuple[str, str], deque[int]] = OrderedDict()
        self._holds: OrderedDict[str, dict[str, int]] = OrderedDict()

    def check(
        self, limits: Limits, client: str, action: str, now_ms: int, hold_ttl_ms: int, member: str
    ) -> tuple[int, int]:
        """What ``limit.lua`` does, in memory; raise LimitExceededError when the client is over a limit. Returns
        the requests left in the window and the ms until the oldest counted leaves it."""
        per_minute = limits.holds_per_minute if action == "hold" else limits.bookings_per_minute
        seen = self._touch(self._requests, (client, action), deque)
        while seen and seen[0] <= now_ms - WINDOW_MS:
            seen.popleft()
        if len(seen) >= per_minute:
            raise errors.LimitExceededError.rate(per_minute, action, seen[0] + WINDOW_MS - now_ms)
        if action == "hold" and limits.live_holds > 0:
            live = self._touch(self._holds, client, dict)
            for hold_id in [h for h, until in live.items() if until <= now_ms]:
                del live[hold_id]
            if len(live) >= limits.live_holds:
                raise errors.LimitExceededError.holds(limits.live_holds, min(live.values()) - now_ms)
            live[member] = now_ms + hold_ttl_ms
        seen.append(now_ms)
        return per_minute - len(seen), seen[0] + WINDOW_MS - now_ms

    def forget(self, client: str, hold_id: str) -> None:
        live = self._holds.get(client)
        if live is not None:
            live.pop(hold_id, None)

    def _touch(self, table: OrderedDict[Any, Any], key: Any, make: Any) -> Any:
        value = table.get(key)
        if value is None:
            value = table[key] = make()
            while len(table) > self.max_clients:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        return value
