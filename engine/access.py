"""Practice staff API keys and the abuse limits of public clients."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import msgspec

from engine import errors, ids, keys
from engine.service import SYSTEM, BookingEngine, Ctx, _s

_enc = msgspec.json.Encoder()


class ApiKey(msgspec.Struct):
    id: str
    practice_id: str
    hash: str
    created_ms: int


class LimitExceededError(errors.BookingError):
    code = "rate_limited"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


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
    await eng.scripts["api_key"](
        keys=[
            keys.api_keys(practice_id),
            keys.api_key_hashes(practice_id),
            keys.events(practice_id),
            keys.audit(practice_id),
        ],
        args=[eng.now_ms(), "create", key.id, key.hash, _enc.encode(key), ctx.actor, ctx.request_id, practice_id],
    )
    return key, token


async def revoke_key(eng: BookingEngine, practice_id: str, key_id: str, ctx: Ctx = SYSTEM) -> None:
    res = await eng.scripts["api_key"](
        keys=[
            keys.api_keys(practice_id),
            keys.api_key_hashes(practice_id),
            keys.events(practice_id),
            keys.audit(practice_id),
        ],
        args=[eng.now_ms(), "revoke", key_id, "", "", ctx.actor, ctx.request_id, practice_id],
    )
    if _s(res[0]) == "NOT_FOUND":
        raise errors.NotFoundError("api key", key_id)


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


async def check_limit(eng: BookingEngine, limits: Limits, client: str, action: str, hold_id: str | None = None) -> None:
    """Record one request of a public client; raise LimitExceededError when it is over a limit."""
    per_minute = limits.holds_per_minute if action == "hold" else limits.bookings_per_minute
    cap = limits.live_holds if action == "hold" else 0
    now = int(time.time() * 1000)
    res: list[Any] = await eng.scripts["limit"](
        keys=[keys.client_requests(client, action), keys.client_holds(client)],
        args=[now, 60_000, per_minute, cap, eng.settings.hold_ttl_seconds * 1000, hold_id or uuid.uuid4().hex],
    )
    status = _s(res[0])
    if status == "OK":
        return
    retry = max(1, -(-int(res[1]) // 1000))
    if status == "HOLDS":
        raise LimitExceededError(f"this client already has {cap} live holds; book or release one first", retry)
    raise LimitExceededError(f"more than {per_minute} {action} requests in a minute from this client", retry)


async def forget_hold(eng: BookingEngine, client: str, hold_id: str) -> None:
    """A hold that was booked, released or refused no longer counts against its client's cap."""
    await eng.redis.zrem(keys.client_holds(client), hold_id)
