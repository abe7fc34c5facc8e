"""Repairs used by reconciliation: put durable records back into Redis without emitting new events."""

from __future__ import annotations

from typing import Any

import msgspec

from engine import keys
from engine.model import Appointment, Practice, Practitioner, Schedule, VisitType
from engine.service import BookingEngine, _s

_enc = msgspec.json.Encoder()


async def restore_setup(
    eng: BookingEngine, practice: Practice, prs: list[Practitioner], vts: list[VisitType]
) -> list[str]:
    """Write back whatever of a practice's setup records Redis lacks; returns what was restored."""
    pid = practice.id
    done = []
    r = eng.redis
    if not await r.hexists(keys.practice(pid), "record"):
        await r.hset(keys.practice(pid), "record", _enc.encode(practice))
        done.append(f"practice {pid}")
    await r.sadd(keys.PRACTICES, pid)
    have_pr = {_s(k) for k in await r.hkeys(keys.practitioners(pid))}
    for pr in prs:
        if pr.id not in have_pr:
            await r.hset(keys.practitioners(pid), pr.id, _enc.encode(pr))
            done.append(f"practitioner {pr.id}")
    have_vt = {_s(k) for k in await r.hkeys(keys.visit_types(pid))}
    for vt in vts:
        if vt.id not in have_vt:
            await r.hset(keys.visit_types(pid), vt.id, _enc.encode(vt))
            done.append(f"visit type {vt.id}")
    return done


async def restore_audit_seq(eng: BookingEngine, practice_id: str, last_seq: int) -> int | None:
    """Make sure Redis numbers new audit events after the last one the database holds."""
    have = int(await eng.redis.hget(keys.audit(practice_id), "seq") or 0)
    if have < last_seq:
        await eng.redis.hset(keys.audit(practice_id), "seq", last_seq)
        return have
    return None


async def restore_schedule(eng: BookingEngine, practice: Practice, practitioner_id: str, schedule: Schedule) -> bool:
    """Put a schedule back and recompute its horizon when Redis lacks it or holds another one."""
    state = await eng._schedule_state(practice.id, practitioner_id)
    if state is not None and state[2]:
        # Redis holds a materialised schedule: it is the live one (the database may lag behind a change that
        # is still being written), so it is never replaced by the database's copy
        return False
    key = keys.schedule(practice.id, practitioner_id)
    gen = await eng.redis.hincrby(key, "gen", 1)
    await eng.redis.hset(
        key,
        mapping={
            "json": _enc.encode(schedule),
            "min_notice_s": schedule.min_notice_minutes * 60,
            "horizon_s": schedule.horizon_days * 86400,
        },
    )
    import datetime as dt

    today = eng._today(practice)
    days = eng._dates(today, today + dt.timedelta(days=schedule.horizon_days))
    await eng._apply_days(practice, practitioner_id, schedule, await eng.list_visit_types(practice.id), days, str(gen))
    return True


async def redis_appointment_versions(eng: BookingEngine, practice_id: str) -> dict[str, tuple[int, str, str]]:
    """appointment id -> (version, status, practitioner_id) for every appointment Redis holds."""
    out: dict[str, tuple[int, str, str]] = {}
    prefix = keys.appointment(practice_id, "")
    async for raw in eng.redis.scan_iter(match=prefix + "*", count=1000):
        key = _s(raw) or ""
        version, status, prac = await eng.redis.hmget(key, "version", "status", "practitioner_id")
        out[key[len(prefix) :]] = (int(version or 0), _s(status) or "", _s(prac) or "")
    return out


async def restore_appointment(
    eng: BookingEngine, a: Appointment, manage_hash: str, updated_ms: int, redis_practitioner: str | None
) -> tuple[str, list[str]]:
    pid = a.practice_id
    res: list[Any] = await eng.scripts["restore"](
        keys=[
            keys.appointment(pid, a.id),
            keys.claims(pid, a.practitioner_id),
            keys.claims(pid, redis_practitioner or a.practitioner_id),
        ],
        args=[
            eng.now_ms(),
            a.id,
            a.status,
            a.version,
            pid,
            a.practitioner_id,
            a.visit_type_id,
            a.start,
            a.end,
            _enc.encode(a.patient),
            manage_hash,
            a.hold_id or "",
            a.cancel_reason or "",
            updated_ms,
        ],
    )
    return _s(res[0]) or "", [_s(x) or "" for x in res[1:]]


async def restore_api_key(eng: BookingEngine, key: Any) -> bool:
    """Put back a live staff key (an engine.access.ApiKey) that Redis lacks."""
    pid = key.practice_id
    if await eng.redis.hexists(keys.api_keys(pid), key.id):
        return False
    await eng.redis.hset(keys.api_keys(pid), key.id, _enc.encode(key))
    await eng.redis.hset(keys.api_key_hashes(pid), key.hash, key.id)
    return True
