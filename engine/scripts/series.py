"""Typed calls of the series scripts: series_hold (every occurrence held or none) and series_book (every
occurrence booked or none). Each builds KEYS from ``engine.keys`` and ARGV in the order the script's header
states."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from engine import errors, keys
from engine.codec import text
from engine.model import Ctx
from engine.scripts.bookings import Replay, _replay
from engine.scripts.registry import Lua, Ref, fail, reply
from engine.scripts.waitlist import OfferKit, kit_args, kit_keys


class Occurrence(msgspec.Struct, frozen=True):
    """One occurrence of a series as held: its hold id, its interval and the bounds of its start's local date."""

    hold_id: str
    start: int
    end: int
    day: tuple[int, int]


class Refused(msgspec.Struct, frozen=True):
    """series_hold refused: the starts (epoch s) of the occurrences that are not offered right now."""

    starts: list[int]


async def series_hold(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    practitioner_id: str,
    visit_type_id: str,
    series_id: str,
    every_days: int,
    occurrences: Sequence[Occurrence],
    ttl_ms: int,
    retention_ms: int,
    ctx: Ctx,
    idem_ref: str | None = None,
    fingerprint: str = "",
    record: bytes = b"",
) -> Replay | Refused | None:
    """Hold every occurrence or none: None (held), the stored record of an idempotent replay, or ``Refused``."""
    pid = practice_id
    script_keys = [
        keys.base(pid, practitioner_id, visit_type_id),
        keys.claims(pid, practitioner_id),
        keys.schedule(pid, practitioner_id),
        keys.series(pid, series_id),
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
        *(keys.hold(pid, o.hold_id) for o in occurrences),
    ]
    args: list[object] = [
        now_ms, series_id, ttl_ms, retention_ms, pid, practitioner_id, visit_type_id, ctx.actor, ctx.request_id,
        fingerprint if idem_ref else "", record, every_days, len(occurrences),
    ]  # fmt: skip
    for o in occurrences:
        args += [o.hold_id, o.start, o.end, o.day[0], o.day[1]]
    res = reply(await lua.run("series_hold", script_keys, args))
    if res[0] == "OK":
        return None
    if res[0] == "REPLAY":
        return _replay(res[1])
    if res[0] == "UNAVAILABLE":
        return Refused([int(text(s)) for s in res[1:]])
    fail(res, Ref("series", series_id, series_id))


async def series_book(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    practitioner_id: str,
    series_id: str,
    bookings: Sequence[tuple[str, str]],
    patient_json: bytes,
    manage_hash: str,
    patient_ref: str,
    ctx: Ctx,
    idem_ref: str | None = None,
    fingerprint: str = "",
    record: bytes = b"",
) -> Replay | None:
    """Book every occurrence of a held series or none: ``bookings`` are (hold id, new appointment id) in the
    series' order. None (booked), or the stored record of an idempotent replay."""
    pid = practice_id
    script_keys = [
        keys.series(pid, series_id),
        keys.claims(pid, practitioner_id),
        keys.hold_expiries(pid),
        keys.events(pid),
        keys.audit(pid),
        keys.idempotency(pid, "book", idem_ref),
        keys.claim_types(pid, practitioner_id),
        keys.resources(pid),
        keys.resource_claims(pid),
    ]
    args: list[object] = [
        now_ms, series_id, patient_json, manage_hash, ctx.actor, ctx.request_id, fingerprint if idem_ref else "",
        record, patient_ref, len(bookings),
    ]  # fmt: skip
    for hold_id, appointment_id in bookings:
        script_keys += [keys.hold(pid, hold_id), keys.appointment(pid, appointment_id)]
        args += [hold_id, appointment_id]
    res = reply(await lua.run("series_book", script_keys, args))
    if res[0] == "OK":
        return None
    if res[0] == "REPLAY":
        return _replay(res[1])
    if res[0] == "NOT_FOUND":
        raise errors.NotFoundError("hold", series_id)
    fail(res, Ref("hold", series_id, series_id))


class SeriesCancelled(msgspec.Struct, frozen=True):
    """series_cancel: how many occurrences this call cancelled (0: all were cancelled or had begun already)."""

    cancelled: int


async def series_cancel(
    lua: Lua,
    *,
    now_ms: int,
    practice_id: str,
    series_id: str,
    occurrences: Sequence[tuple[str, str]],
    kits: Sequence[OfferKit],
    reason: str,
    ctx: Ctx,
) -> SeriesCancelled | None:
    """Cancel every occurrence still ahead in one step. ``occurrences``: (appointment id, practitioner id as read)
    of each occurrence to cancel; ``kits``: one waitlist kit per practitioner they name. None: an occurrence moved
    to another practitioner meanwhile (read again and retry); NotFoundError when the series is not booked or an
    occurrence left Redis meanwhile; OfferKitError when a kit was refused (nothing changed either way)."""
    pid = practice_id
    group = {k.practitioner_id: i + 1 for i, k in enumerate(kits)}
    script_keys = [keys.series(pid, series_id), keys.events(pid), keys.audit(pid)]
    args: list[object] = [now_ms, series_id, ctx.actor, ctx.request_id, reason, len(occurrences)]
    for appointment_id, practitioner_id in occurrences:
        script_keys.append(keys.appointment(pid, appointment_id))
        args += [appointment_id, group[practitioner_id]]
    args.append(len(kits))
    for kit in kits:
        pr = kit.practitioner_id
        kit_k = kit_keys(pid, kit)
        script_keys += [keys.claims(pid, pr), keys.versions(pid, pr), *kit_k]
        args += [len(kit_k), *kit_args(pid, kit)]
    res = reply(await lua.run("series_cancel", script_keys, args))
    if res[0] == "OK":
        return SeriesCancelled(int(res[1]))
    if res[0] == "RETRY":
        return None
    fail(res, Ref("series", series_id))


async def restore_series(lua: Lua, *, practice_id: str, series_id: str, fields: dict[str, str]) -> bool:
    """Put back a booked series Redis lacks (reconciliation; never over one it holds); True when it was missing."""
    pairs = [x for kv in fields.items() for x in kv]
    res = reply(await lua.run("restore_series", [keys.series(practice_id, series_id)], pairs))
    return bool(res[0] == "OK")
