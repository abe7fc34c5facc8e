"""Practice staff API keys and the abuse limits of public clients."""

from __future__ import annotations

import secrets
import time
import uuid

import msgspec

from engine import ids, keys, scripts
from engine.codec import encoder
from engine.model import SYSTEM, ApiKey, Ctx
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


async def check_limit(eng: BookingEngine, limits: Limits, client: str, action: str, hold_id: str | None = None) -> None:
    """Record one request of a public client; raise LimitExceededError when it is over a limit."""
    await scripts.limit(
        eng.lua,
        now_ms=int(time.time() * 1000),
        client=client,
        action=action,
        per_minute=limits.holds_per_minute if action == "hold" else limits.bookings_per_minute,
        live_holds=limits.live_holds if action == "hold" else 0,
        hold_ttl_ms=eng.settings.hold_ttl_seconds * 1000,
        member=hold_id or uuid.uuid4().hex,
    )


async def forget_hold(eng: BookingEngine, client: str, hold_id: str) -> None:
    """A hold that was booked, released or refused no longer counts against its client's cap."""
    await scripts.forget_client_hold(eng.lua, client, hold_id)
