"""Repairs used by reconciliation: put durable records back into Redis without emitting new events.

Every write goes through the script layer (``engine.scripts``), each one atomic and never replacing what Redis
already holds: a record written meanwhile by the live engine wins over the database's copy.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from engine import access, keys, scripts, timeutil
from engine.codec import text
from engine.model import (
    SYSTEM,
    ApiKey,
    Appointment,
    Practice,
    Practitioner,
    Resource,
    Schedule,
    VisitType,
    WaitlistRecord,
)
from engine.scripts.waitlist import OfferKit
from engine.service import BookingEngine


async def restore_setup(
    eng: BookingEngine, practice: Practice, prs: list[Practitioner], vts: list[VisitType]
) -> list[str]:
    """Write back whatever of a practice's setup records Redis lacks; returns what was restored."""
    pid = practice.id
    lua = eng.lua
    done = []
    await scripts.add_practice(lua, pid)
    if await scripts.restore_entity(lua, practice_id=pid, key=keys.practice(pid), field="record", record=practice):
        done.append(f"practice {pid}")
    for pr in prs:
        if await scripts.restore_entity(lua, practice_id=pid, key=keys.practitioners(pid), field=pr.id, record=pr):
            done.append(f"practitioner {pr.id}")
    for vt in vts:
        if await scripts.restore_entity(lua, practice_id=pid, key=keys.visit_types(pid), field=vt.id, record=vt):
            done.append(f"visit type {vt.id}")
    return done


async def restore_resources(eng: BookingEngine, resources: list[Resource]) -> list[str]:
    """Write back the rooms and equipment Redis lacks (their closures with them); returns what was restored."""
    done = []
    for r in resources:
        r = msgspec.structs.replace(r, spans=r.closure_spans())
        if await scripts.resource(eng.lua, now_ms=eng.now_ms(), practice_id=r.practice_id, resource=r, ctx=SYSTEM,
                                  restore=True):  # fmt: skip
            done.append(f"resource {r.id}")
    return done


async def restore_audit_seq(eng: BookingEngine, practice_id: str, last_seq: int) -> int | None:
    """Make sure Redis numbers new audit events after the last one the database holds; returns the sequence
    number Redis had when it was behind."""
    return await scripts.restore_seq(eng.lua, practice_id=practice_id, last_seq=last_seq)


async def restore_schedule(eng: BookingEngine, practice: Practice, practitioner_id: str, schedule: Schedule) -> bool:
    """Put a schedule back and recompute its horizon when Redis lacks a materialised one."""
    return await eng.availability.restore_schedule(practice, practitioner_id, schedule)


async def redis_appointment_versions(eng: BookingEngine, practice_id: str) -> dict[str, tuple[int, str, str]]:
    """appointment id -> (version, status, practitioner_id) for every appointment Redis holds."""
    out: dict[str, tuple[int, str, str]] = {}
    prefix = keys.appointment(practice_id, "")
    async for raw in eng.redis.scan_iter(match=prefix + "*", count=1000):
        key = text(raw)
        version, status, prac = await eng.redis.hmget(key, "version", "status", "practitioner_id")
        out[key[len(prefix) :]] = (int(version or 0), text(status), text(prac))
    return out


async def restore_appointment(
    eng: BookingEngine,
    a: Appointment,
    manage_hash: str,
    updated_ms: int,
    redis_practitioner: str | None,
    resource_ids: list[str] | None = None,
) -> tuple[str, list[str]]:
    """``resource_ids``: the rooms and equipment the appointment claimed, as stored (None: not stored, a row
    written before they were: the ones its visit type needs now)."""
    res = await scripts.restore(
        eng.lua,
        now_ms=eng.now_ms(),
        appointment=a,
        manage_hash=manage_hash,
        updated_ms=updated_ms,
        redis_practitioner=redis_practitioner or a.practitioner_id,
        resource_ids=resource_ids,
    )
    return res.status, res.detail


async def restore_series(eng: BookingEngine, practice_id: str, series_id: str, fields: dict[str, str]) -> bool:
    """Put back a booked series Redis lacks (its hash as series_book.lua leaves it); True when it was missing."""
    return await scripts.restore_series(eng.lua, practice_id=practice_id, series_id=series_id, fields=fields)


class _Version(msgspec.Struct):
    version: int
    status: str


async def redis_waitlist_versions(eng: BookingEngine, practice_id: str) -> dict[str, tuple[int, str]]:
    """entry id -> (version, status) for every waitlist entry Redis holds."""
    raw = await eng.redis.hgetall(keys.waitlist_entries(practice_id))
    out = {}
    for k, v in raw.items():
        got = msgspec.json.decode(v, type=_Version)
        out[text(k)] = (got.version, got.status)
    return out


def entry_live(r: WaitlistRecord, now_s: int) -> bool:
    """Waiting or offered, and its window not passed (its last span not ended: it would read ``ended``)."""
    return r.status in ("waiting", "offered") and any(end > now_s for _, end in r.spans)


async def restore_waitlist_entry(eng: BookingEngine, record: WaitlistRecord) -> tuple[str, str]:
    """Put a durable waitlist entry back (never over a copy Redis has at that version or newer); returns the
    script's status and how (engine.scripts.restore_waitlist)."""
    now_ms = eng.now_ms()
    day = (0, 0)
    if record.offer is not None:
        tz = timeutil.zone((await eng.catalog.cached_practice(record.practice_id)).timezone)
        day = timeutil.day_bounds(dt.datetime.fromtimestamp(record.offer.start, tz).date(), tz)
    res = await scripts.restore_waitlist(
        eng.lua,
        now_ms=now_ms,
        record=record,
        live=entry_live(record, now_ms // 1000),
        retention_ms=eng.settings.hold_retention_seconds * 1000,
        day=day,
    )
    return res.status, res.detail[0]


async def restore_api_key(eng: BookingEngine, key: ApiKey) -> bool:
    """Put back a live staff key that Redis lacks."""
    return await access.restore_key(eng, key)


async def mark_practice(eng: BookingEngine, practice_id: str) -> None:
    """The practice's data is back: its marker says so, and bk:v1:lost no longer names it (persistence/shards.py)."""
    await scripts.mark_practice(eng.lua, practice_id, eng.now_ms())
    await eng.redis.hdel(keys.LOST, practice_id)


async def mark_reconciled(eng: BookingEngine) -> None:
    await scripts.mark_reconciled(eng.lua, eng.now_ms())


async def offer_freed_interval(
    eng: BookingEngine, practice_id: str, practitioner_id: str, start: int, end: int, exclude: str = ""
) -> int:
    """After a practice's data came back: offer an interval that Redis's loss freed (a hold it lost, an offer that
    expired meanwhile) to the waiting entries first, as the freeing scripts would have. Returns the offers made."""

    async def step(kit: OfferKit) -> int:
        return await scripts.waitlist_offer_free(
            eng.lua, now_ms=eng.now_ms(), practice_id=practice_id, start=start, end=end, actor="reconcile",
            exclude=exclude, kit=kit,
        )  # fmt: skip

    return await eng.appointments.offers.run(practice_id, practitioner_id, step, others=False)  # frees no room


WAITLIST_COUNTED = {
    "waitlist_join": "joined",
    "waitlist_offer": "offers",
    "waitlist_accept": "accepted",
    "waitlist_decline": "declined",
    "waitlist_lapse": "lapsed",
    "waitlist_leave": "left",
}


async def raise_waitlist_counters(eng: BookingEngine, practice_id: str, audit_counts: dict[str, int]) -> int:
    """T:wl:stats raised to the durable audit's counts per waitlist action (never lowered)."""
    counts = {WAITLIST_COUNTED[a]: n for a, n in audit_counts.items() if a in WAITLIST_COUNTED}
    return await scripts.waitlist_counters(eng.lua, practice_id, counts) if counts else 0
