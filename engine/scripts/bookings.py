"""Typed calls of the booking-flow scripts: hold, release, expire, book, cancel, reschedule.

Each function builds KEYS from ``engine.keys`` and ARGV in the order the script's header states, and returns
a typed value or raises the domain error of the script's status (``registry.STATUS_ERRORS``).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from engine import keys
from engine.codec import text
from engine.model import Ctx
from engine.scripts.registry import Call, Lua, Ref, fail, reply
from engine.scripts.waitlist import OfferKit, kit_args, kit_keys


class Replay(msgspec.Struct, frozen=True):
    """An idempotent replay: the record stored with the first success (encoded JSON)."""

    record: bytes


class Booked(msgspec.Struct, frozen=True):
    visit_type_id: str
    start: int
    end: int


class NewVersion(msgspec.Struct, frozen=True):
    """The result of cancel or reschedule: the appointment's version afterwards (``already``: no change)."""

    version: int
    already: bool = False


class Retry(msgspec.Struct, frozen=True):
    """The appointment moved to another practitioner since the caller read it: read again and retry."""


RETRY = Retry()


def _replay(value: bytes | str) -> Replay:
    return Replay(value if isinstance(value, bytes) else value.encode())


def hold_call(
    *,
    now_ms: int,
    practice_id: str,
    practitioner_id: str,
    visit_type_id: str,
    hold_id: str,
    start: int,
    end: int,
    ttl_ms: int,
    retention_ms: int,
    ctx: Ctx,
    idem_ref: str | None = None,
    fingerprint: str = "",
    record: bytes = b"",
    day: tuple[int, int] = (0, 0),
) -> Call:
    """``idem_ref``, ``fingerprint`` and ``record`` come from ``engine.idempotency`` (never the client's key);
    ``day``: the bounds of the start's local date (its daily limit counts the claims that start in them)."""
    pid = practice_id
    return Call(
        "hold",
        [
            keys.base(pid, practitioner_id, visit_type_id),
            keys.claims(pid, practitioner_id),
            keys.schedule(pid, practitioner_id),
            keys.hold(pid, hold_id),
            keys.hold_expiries(pid),
            keys.events(pid),
            keys.audit(pid),
            keys.idempotency(pid, "hold", idem_ref),
            keys.versions(pid, practitioner_id),
            keys.waitlist_queue(pid),
            keys.visit_types(pid),
            keys.claim_types(pid, practitioner_id),
            keys.resources(pid),
            keys.resource_claims(pid),
        ],
        [
            now_ms,
            start,
            end,
            hold_id,
            ttl_ms,
            retention_ms,
            pid,
            practitioner_id,
            visit_type_id,
            ctx.actor,
            ctx.request_id,
            fingerprint if idem_ref else "",
            record,
            day[0],
            day[1],
        ],
        Ref("hold", hold_id, hold_id),
    )


async def hold(lua: Lua, call: Call) -> Replay | None:
    """Claim [start, end) if it is offered right now (``hold_call``): None, or the stored record of an
    idempotent replay."""
    res = await lua.call(call, "hold")
    if res[0] == "OK":
        return None
    if res[0] == "REPLAY":
        return _replay(res[1])
    fail(res, call.ref)


def release_call(
    *,
    now_ms: int,
    practice_id: str,
    practitioner_id: str,
    hold_id: str,
    ctx: Ctx,
    kit: OfferKit | None = None,
    offers: str = "",
) -> Call:
    """``kit``: the waitlist kit of the hold's practitioner (without one, a practice whose entries wait answers
    OfferKitError and nothing changes). ``offers``: '*' when the caller may release a waitlist offer's hold
    (staff, admin, the engine); else such a hold answers OfferHoldError."""
    pid = practice_id
    return Call(
        "release",
        [
            keys.hold(pid, hold_id),
            keys.claims(pid, practitioner_id),
            keys.hold_expiries(pid),
            keys.events(pid),
            keys.audit(pid),
            keys.versions(pid, practitioner_id),
            *kit_keys(pid, kit),
        ],
        [now_ms, hold_id, ctx.actor, ctx.request_id, offers, *kit_args(pid, kit)],
        Ref("hold", hold_id, hold_id),
    )


async def release(lua: Lua, call: Call) -> str:
    """Release a live hold (``release_call``): 'released', or the state it already had."""
    res = await lua.call(call, "release")
    if res[0] == "OK":
        return "released"
    if res[0] == "GONE":
        return text(res[1])
    fail(res, call.ref)


async def expire(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    holds: Sequence[tuple[str, str]],
    actor: str,
    kit: OfferKit | None = None,
) -> int:
    """Mark the given (hold id, practitioner id) holds expired if their time ran out; returns how many were.
    While entries wait, only holds of the ``kit``'s practitioner are tidied (their intervals offered first)."""
    pid = practice_id
    script_keys = [keys.hold_expiries(pid), keys.events(pid), keys.audit(pid)]
    for hold_id, practitioner_id in holds:
        script_keys += [keys.hold(pid, hold_id), keys.claims(pid, practitioner_id)]
    args = [now_ms, actor, len(holds), *(h for h, _ in holds), *kit_args(pid, kit)]
    return int(await lua.run("expire", [*script_keys, *kit_keys(pid, kit)], args))


def book_call(
    *,
    now_ms: int,
    practice_id: str,
    practitioner_id: str,
    hold_id: str,
    appointment_id: str,
    patient_json: bytes,
    manage_hash: str,
    patient_ref: str,
    ctx: Ctx,
    idem_ref: str | None = None,
    fingerprint: str = "",
    record: bytes = b"",
    offers: str = "",
) -> Call:
    """``offers``: whose waitlist offer this call may book: '*' any (staff, admin, the engine), an entry id (that
    entry's accept), '' none (a waitlist offer's hold answers SlotUnavailableError)."""
    pid = practice_id
    return Call(
        "book",
        [
            keys.hold(pid, hold_id),
            keys.claims(pid, practitioner_id),
            keys.appointment(pid, appointment_id),
            keys.hold_expiries(pid),
            keys.events(pid),
            keys.audit(pid),
            keys.idempotency(pid, "book", idem_ref),
            keys.waitlist_queue(pid),
            keys.waitlist_entries(pid),
            keys.waitlist_stats(pid),
            keys.waitlist_index(pid),
            keys.waitlist_waiting(pid),
            keys.claim_types(pid, practitioner_id),
            keys.resources(pid),
            keys.resource_claims(pid),
        ],
        [
            now_ms,
            hold_id,
            appointment_id,
            patient_json,
            manage_hash,
            ctx.actor,
            ctx.request_id,
            fingerprint if idem_ref else "",
            record,
            patient_ref,
            offers,
        ],
        Ref("hold", hold_id, hold_id),
    )


async def book(lua: Lua, call: Call) -> Booked | Replay:
    """Turn a live hold into a booked appointment (``book_call``)."""
    res = await lua.call(call, "book")
    if res[0] == "OK":
        return Booked(text(res[1]), int(res[2]), int(res[3]))
    if res[0] == "REPLAY":
        return _replay(res[1])
    fail(res, call.ref)


def cancel_call(
    *,
    now_ms: int,
    practice_id: str,
    appointment_id: str,
    practitioner_id: str,
    reason: str,
    ctx: Ctx,
    kit: OfferKit | None = None,
) -> Call:
    """``kit``: the waitlist kit of ``practitioner_id`` (as for ``release_call``)."""
    pid = practice_id
    return Call(
        "cancel",
        [
            keys.appointment(pid, appointment_id),
            keys.claims(pid, practitioner_id),
            keys.events(pid),
            keys.audit(pid),
            keys.versions(pid, practitioner_id),
            *kit_keys(pid, kit),
        ],
        [now_ms, appointment_id, practitioner_id, ctx.actor, ctx.request_id, reason, *kit_args(pid, kit)],
        Ref("appointment", appointment_id),
    )


async def cancel(lua: Lua, call: Call) -> NewVersion | Retry:
    """Cancel a booked appointment (``cancel_call``; ``already``: it was cancelled before)."""
    res = await lua.call(call, "cancel")
    if res[0] in ("OK", "ALREADY"):
        return NewVersion(int(res[1]), already=res[0] == "ALREADY")
    if res[0] == "RETRY":
        return RETRY
    fail(res, call.ref)


async def reschedule(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    appointment_id: str,
    practitioner_id: str,
    hold_id: str,
    hold_practitioner_id: str,
    move_id: str,
    ctx: Ctx,
    kit: OfferKit | None = None,
    offers: str = "",
) -> NewVersion | Retry:
    """Move a booked appointment onto a live hold of the same practice; ``move_id`` (new for each request)
    lets a retry of the same call be answered as the first one was. ``kit``: the waitlist kit of its current
    practitioner (the old interval is offered first). ``offers``: '*' when the caller may move onto a waitlist
    offer's hold (staff, admin, the engine); else such a hold answers SlotUnavailableError."""
    pid = practice_id
    res = reply(
        await lua.run(
            "reschedule",
            [
                keys.appointment(pid, appointment_id),
                keys.claims(pid, practitioner_id),
                keys.hold(pid, hold_id),
                keys.claims(pid, hold_practitioner_id),
                keys.hold_expiries(pid),
                keys.events(pid),
                keys.audit(pid),
                keys.versions(pid, practitioner_id),
                keys.claim_types(pid, practitioner_id),
                keys.claim_types(pid, hold_practitioner_id),
                *kit_keys(pid, kit),
            ],
            [
                now_ms,
                appointment_id,
                hold_id,
                practitioner_id,
                ctx.actor,
                ctx.request_id,
                move_id,
                offers,
                *kit_args(pid, kit),
            ],
        )
    )
    if res[0] == "OK":
        return NewVersion(int(res[1]))
    if res[0] == "RETRY":
        return RETRY
    fail(res, Ref("appointment", appointment_id, hold_id))
