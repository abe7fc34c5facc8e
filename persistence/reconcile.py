"""Reconciliation: PostgreSQL and Redis compared in both directions, every difference reported.

1. Redis -> database: drain every stream (including entries a dead persister left pending).
2. Database -> Redis: put back setup records, schedules (recomputing availability), appointments, booked series, waitlist
   entries (with their live offers where they can still be held) and audit sequence numbers that Redis lacks or
   holds in an older version. Never creates an overlap; never deletes a booking: an appointment only Redis
   knows is reported and left in place.
3. Mark Redis as reconciled (``/readyz`` waits for it when a database is configured).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from engine import access, limits
from engine import restore as rs
from engine.model import ApiKey, Closure, Practice, Practitioner, Resource, VisitType, stored_schedule
from engine.service import BookingEngine
from persistence import app_keys as app_key_rows
from persistence import waitlist_rows
from persistence.archive import appointment_from_row, epoch, series_fields
from persistence.persister import Persister
from persistence.tables import (
    api_keys,
    appointments,
    audit_events,
    audit_heads,
    holds,
    practices,
    practitioners,
    resources,
    schedules,
    series,
    series_occurrences,
    visit_types,
    waitlist_entries,
)

RESTORE_PAST_DAYS = limits.RESTORE_PAST_DAYS  # appointments that ended longer ago are not put back into Redis


class Report(msgspec.Struct):
    drained: int = 0
    restored: list[str] = []
    conflicts: list[str] = []
    redis_only: list[str] = []
    redis_ahead: list[str] = []
    audit_seq_fixed: list[str] = []
    practices: list[str] = []  # the practices this pass went through (each marked present again)

    def lines(self) -> list[str]:
        out = [f"drained {self.drained} event(s) from Redis into the database"]
        out += [f"restored in Redis: {x}" for x in self.restored]
        out += [f"CONFLICT (not restored, would overlap): {x}" for x in self.conflicts]
        out += [
            f"only in Redis (left in place, its event is still to be persisted or was lost): {x}"
            for x in self.redis_only
        ]
        out += [f"Redis ahead of the database (persister lag): {x}" for x in self.redis_ahead]
        out += [f"audit sequence raised: {x}" for x in self.audit_seq_fixed]
        if len(out) == 1:
            out.append("no differences between Redis and the database")
        return out


def resource_from_row(r: Any) -> Resource:
    closures = msgspec.json.decode(r["closures"] or "[]", type=list[Closure])
    return Resource(id=r["id"], practice_id=r["practice_id"], name=r["name"], kind=r["kind"], closures=closures)


def _load(db: Engine) -> dict[str, Any]:
    horizon = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=RESTORE_PAST_DAYS)
    w = waitlist_entries
    recent = w.c.status.in_(("waiting", "offered")) | (w.c.updated_at_ms >= int(horizon.timestamp() * 1000))
    with db.connect() as c:
        return {
            "practices": c.execute(select(practices)).mappings().all(),
            "practitioners": c.execute(select(practitioners)).mappings().all(),
            "visit_types": c.execute(select(visit_types)).mappings().all(),
            "resources": c.execute(select(resources)).mappings().all(),
            "schedules": c.execute(select(schedules)).mappings().all(),
            "appointments": c.execute(select(appointments).where(appointments.c.end_at >= horizon)).mappings().all(),
            "heads": c.execute(select(audit_heads)).mappings().all(),
            "api_keys": c.execute(select(api_keys).where(api_keys.c.revoked_ms.is_(None))).mappings().all(),
            "waitlist": c.execute(select(w).where(recent).order_by(w.c.practice_id, w.c.join_order)).mappings().all(),
            "series": c.execute(select(series)).mappings().all(),
            "series_occurrences": c.execute(
                select(series_occurrences).order_by(series_occurrences.c.series_id, series_occurrences.c.position)
            )
            .mappings()
            .all(),
        }


def _existing(db: Engine, ids: list[str], table: Any = appointments) -> set[str]:
    if not ids:
        return set()
    with db.connect() as c:
        return set(c.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())


def _waitlist_audit_counts(db: Engine, practice_id: str) -> dict[str, int]:
    """The practice's durable audit rows per waitlist action (its T:wl:stats counters as the database knows them)."""
    a = audit_events
    q = (
        select(a.c.action, func.count())
        .where(a.c.practice_id == practice_id, a.c.action.in_(list(rs.WAITLIST_COUNTED)))
        .group_by(a.c.action)
    )
    with db.connect() as c:
        return {action: int(n) for action, n in c.execute(q).all()}


Freed = tuple[str, int, int, str, str]  # practitioner, visit start, visit end, entry id ('' none), visit type


def _lost_holds(db: Engine, practice_id: str, now_ms: int) -> list[Freed]:
    """The holds the database knows held (live, or expired and not yet tidied: the sweeper would have offered
    their intervals) that Redis lost, still ahead: (practitioner, start, end, '', visit type) each; their occupations are
    offered to the waitlist first (no script freed them)."""
    h = holds
    ahead = dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc)
    q = select(h.c.practitioner_id, h.c.start_at, h.c.end_at, h.c.visit_type_id).where(
        h.c.practice_id == practice_id, h.c.state == "held", h.c.end_at > ahead
    )
    with db.connect() as c:
        return [(r.practitioner_id, epoch(r.start_at), epoch(r.end_at), "", r.visit_type_id) for r in c.execute(q)]


async def _restore_waitlist(
    eng: BookingEngine, db: Engine, practice_id: str, rows: list[Any], report: Report
) -> list[Freed]:
    """After the appointments (an offer never comes back over a restored booking), in join order. Returns the
    intervals of offers that could not come back (expired meanwhile): (practitioner, start, end, entry id, visit
    type)."""
    freed: list[Freed] = []
    in_redis = await rs.redis_waitlist_versions(eng, practice_id)
    for row in rows:
        entry = waitlist_rows.record(row)
        have = in_redis.pop(entry.id, None)
        if have is not None and have[0] >= entry.version:
            if have[0] > entry.version:
                report.redis_ahead.append(f"waitlist entry {entry.id} v{have[0]} (database v{entry.version})")
            continue
        status, how = await rs.restore_waitlist_entry(eng, entry)
        if status != "OK":
            continue  # written meanwhile by the live engine: Redis's copy wins
        what = f"waitlist entry {entry.id} ({entry.status} v{entry.version})"
        if how in ("expired", "taken") and entry.offer is not None:
            why = "expired" if how == "expired" else "overlaps a claim"
            report.restored.append(f"{what}, back to waiting: its offer {entry.offer.hold_id} {why}")
            if how == "expired":
                o = entry.offer
                freed.append((o.practitioner_id, o.start, o.end, entry.id, entry.visit_type_id))
        elif how == "offered" and entry.offer is not None:
            report.restored.append(f"{what} with its offer {entry.offer.hold_id}")
        else:
            report.restored.append(f"{what}{'' if how == 'queued' else ', not queued'}")
    known = await asyncio.to_thread(_existing, db, list(in_redis), waitlist_entries)
    for entry_id in sorted(set(in_redis) - known):
        version, status = in_redis[entry_id]
        report.redis_only.append(f"waitlist entry {entry_id} ({status} v{version})")
    return freed


async def _restore_series(eng: BookingEngine, row: Any, occ: list[Any]) -> bool:
    """A booked series as series_book.lua leaves its hash (its occurrences in order), put back when Redis lacks it.
    True when it was missing."""
    return await rs.restore_series(eng, row["practice_id"], row["id"], series_fields(row, occ))


async def _reconcile_app_keys(eng: BookingEngine, db: Engine, report: Report) -> None:
    """App keys (global, not a practice's): the database's live keys that Redis lacks are put back, its revoked
    ones are revoked in Redis too (a revocation whose Redis step failed), and live keys only Redis holds (issued
    before migration 0010) are stored."""
    rows = await asyncio.to_thread(app_key_rows.load, db)
    in_redis = await access.live_app_keys(eng)
    for row in rows:
        if row["revoked_ms"] is None:
            if row["id"] not in in_redis and await access.restore_app_key(eng, app_key_rows.key_of(row)):
                report.restored.append(f"app key {row['id']}")
        elif row["id"] in in_redis and await access.revoke_app_key(eng, row["id"], tombstone=True):
            report.restored.append(f"app key {row['id']} revoked (as the database has it)")
    known = {row["id"] for row in rows}
    adopted = await asyncio.to_thread(app_key_rows.adopt, db, [k for i, k in in_redis.items() if i not in known])
    report.restored.extend(f"app key {key_id} stored in the database (Redis alone held it)" for key_id in adopted)


async def reconcile(
    eng: BookingEngine,
    redis_sync: Any,
    db: Engine,
    out: Callable[[str], None] = print,
    practices_only: set[str] | None = None,
) -> Report:
    """One pass over every practice, or over ``practices_only`` (those whose data Redis lost: persistence/
    shards.py), leaving every other practice untouched. Only a full pass drains the streams first (a running
    persister stores the others' events)."""
    report = Report()
    if practices_only is None:
        drain = Persister(redis_sync, db, consumer="reconcile", sharing="free").drain
        report.drained = await asyncio.to_thread(drain)
    data = await asyncio.to_thread(_load, db)
    if practices_only is not None:
        data["practices"] = [row for row in data["practices"] if row["id"] in practices_only]
    by_practice: dict[str, dict[str, list[Any]]] = {}
    for kind in (
        "practitioners",
        "visit_types",
        "resources",
        "schedules",
        "appointments",
        "api_keys",
        "waitlist",
        "series",
    ):
        for row in data[kind]:
            by_practice.setdefault(row["practice_id"], {}).setdefault(kind, []).append(row)
    occurrences: dict[str, list[Any]] = {}
    for row in data["series_occurrences"]:
        occurrences.setdefault(row["series_id"], []).append(row)
    heads = {h["practice_id"]: int(h["last_seq"]) for h in data["heads"]}
    for prow in data["practices"]:
        practice = Practice(
            id=prow["id"], name=prow["name"], timezone=prow["timezone"], language=prow.get("language") or "en"
        )
        mine = by_practice.get(practice.id, {})
        prs = [
            Practitioner(id=r["id"], practice_id=r["practice_id"], name=r["name"])
            for r in mine.get("practitioners", [])
        ]
        vts = [
            VisitType(
                id=r["id"],
                practice_id=r["practice_id"],
                name=r["name"],
                duration_minutes=r["duration_minutes"],
                buffer_before_minutes=r.get("buffer_before_minutes") or 0,
                buffer_after_minutes=r.get("buffer_after_minutes") or 0,
                max_per_day=r.get("max_per_day"),
                resource_ids=msgspec.json.decode(r.get("resource_ids") or "[]", type=list[str]),
            )
            for r in mine.get("visit_types", [])
        ]
        report.restored += await rs.restore_setup(eng, practice, prs, vts)
        report.restored += await rs.restore_resources(eng, [resource_from_row(r) for r in mine.get("resources", [])])
        for krow in mine.get("api_keys", []):
            if await rs.restore_api_key(
                eng,
                ApiKey(
                    id=krow["id"], practice_id=krow["practice_id"], hash=krow["hash"], created_ms=krow["created_ms"]
                ),
            ):
                report.restored.append(f"api key {krow['id']}")
        before = await rs.restore_audit_seq(eng, practice.id, heads.get(practice.id, 0))
        if before is not None:
            report.audit_seq_fixed.append(f"practice {practice.id}: {before} -> {heads.get(practice.id, 0)}")
        for srow in mine.get("schedules", []):
            schedule = stored_schedule(srow["body"])
            if await rs.restore_schedule(eng, practice, srow["practitioner_id"], schedule):
                report.restored.append(f"schedule of {srow['practitioner_id']} (availability recomputed)")
        in_redis = await rs.redis_appointment_versions(eng, practice.id)
        stored = set()
        for arow in sorted(mine.get("appointments", []), key=lambda r: r["status"] != "cancelled"):
            stored.add(arow["id"])
            have = in_redis.get(arow["id"])
            if have is not None and have[0] > arow["version"]:
                report.redis_ahead.append(f"appointment {arow['id']} v{have[0]} (database v{arow['version']})")
                continue
            if have is not None and have[0] == arow["version"]:
                continue
            appt = appointment_from_row(arow)
            stored_rids = arow.get("resource_ids")  # None: a row written before 0011 (its visit type's now)
            status, clash = await rs.restore_appointment(
                eng, appt, arow["manage_hash"], arow["updated_at_ms"], have[2] if have else None,
                None if stored_rids is None else msgspec.json.decode(stored_rids, type=list[str]),
            )  # fmt: skip
            if status == "OK":
                report.restored.append(f"appointment {appt.id} ({appt.status} v{appt.version})")
            elif status == "CONFLICT":
                report.conflicts.append(f"appointment {appt.id} overlaps {', '.join(clash)}")
        unknown = [a for a, (_, status, _) in in_redis.items() if a not in stored and status]
        known = await asyncio.to_thread(_existing, db, unknown)
        for appt_id in sorted(set(unknown) - known):
            version, status, _ = in_redis[appt_id]
            report.redis_only.append(f"appointment {appt_id} ({status} v{version})")
        for srow in mine.get("series", []):
            occ = occurrences.get(srow["id"], [])
            if not stored.intersection(o["appointment_id"] for o in occ):
                continue  # every occurrence ended long ago (not restored either): read from the database
            if await _restore_series(eng, srow, occ):
                report.restored.append(f"series {srow['id']}")
        freed_by_loss = await _restore_waitlist(eng, db, practice.id, mine.get("waitlist", []), report)
        counts = await asyncio.to_thread(_waitlist_audit_counts, db, practice.id)
        if await rs.raise_waitlist_counters(eng, practice.id, counts):
            report.restored.append(f"waitlist counters of practice {practice.id} (from the audit trail)")
        freed = freed_by_loss + await asyncio.to_thread(_lost_holds, db, practice.id, eng.now_ms())
        offered = 0
        # each claim occupied its visit and its visit type's buffers (hold.lua, wl_offer): that occupation is what
        # the loss freed, and what is offered (as cancel.lua and the sweeper offer it)
        buffers = {v.id: (v.buffer_before_minutes * 60, v.buffer_after_minutes * 60) for v in vts}
        for pr, start, end, entry_id, vt_id in freed:
            before_s, after_s = buffers.get(vt_id, (0, 0))
            offered += await rs.offer_freed_interval(eng, practice.id, pr, start - before_s, end + after_s, entry_id)
        if offered:
            report.restored.append(f"{offered} waitlist offer(s) of intervals the loss freed in {practice.id}")
        await rs.mark_practice(eng, practice.id)
        report.practices.append(practice.id)
    await _reconcile_app_keys(eng, db, report)
    await rs.mark_reconciled(eng)
    for line in report.lines():
        out(line)
    return report
