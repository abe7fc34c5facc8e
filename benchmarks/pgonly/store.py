"""The comparator's operations: one transaction each, SQLAlchemy Core on psycopg (async)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from engine import timeutil
from engine.model import Schedule

UTC = dt.UTC
_enc = msgspec.json.Encoder()


class Problem(Exception):
    def __init__(self, status: int, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.status, self.code, self.detail = status, code, detail or code


def _ts(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


def _epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


async def audit(c: AsyncConnection, action: str, actor: str, pid: str, detail: Any, **ids: str | None) -> None:
    await c.execute(
        text(
            "INSERT INTO audit_events (action, actor, practice_id, practitioner_id, hold_id, appointment_id, detail)"
            " VALUES (:a, :actor, :p, :pr, :h, :ap, CAST(:d AS jsonb))"
        ),
        {
            "a": action,
            "actor": actor,
            "p": pid,
            "pr": ids.get("practitioner"),
            "h": ids.get("hold"),
            "ap": ids.get("appointment"),
            "d": _enc.encode(detail).decode(),
        },
    )


# ------------------------------------------------------------------ setup
async def add_row(c: AsyncConnection, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    await c.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + k for k in row)})"), row)


async def one(c: AsyncConnection, sql: str, **params: Any) -> Any:
    return (await c.execute(text(sql), params)).first()


async def put_schedule(c: AsyncConnection, practitioner_id: str, schedule: Schedule) -> None:
    row = await one(
        c,
        "SELECT p.id, p.timezone FROM practitioners r JOIN practices p ON p.id = r.practice_id WHERE r.id = :r",
        r=practitioner_id,
    )
    if row is None:
        raise Problem(404, "not_found", f"practitioner {practitioner_id}")
    pid, tzname = row
    tz = timeutil.zone(tzname)
    vts = (
        await c.execute(text("SELECT id, duration_minutes FROM visit_types WHERE practice_id = :p"), {"p": pid})
    ).all()
    await c.execute(
        text(
            "INSERT INTO schedules (practitioner_id, body, min_notice_s, horizon_s) VALUES (:r, CAST(:b AS jsonb),"
            " :n, :h) ON CONFLICT (practitioner_id) DO UPDATE SET body = EXCLUDED.body,"
            " min_notice_s = EXCLUDED.min_notice_s, horizon_s = EXCLUDED.horizon_s"
        ),
        {
            "r": practitioner_id,
            "b": _enc.encode(schedule).decode(),
            "n": schedule.min_notice_minutes * 60,
            "h": schedule.horizon_days * 86400,
        },
    )
    await c.execute(text("DELETE FROM slots WHERE practitioner_id = :r"), {"r": practitioner_id})
    today = timeutil.local_date_of(int(dt.datetime.now(UTC).timestamp()), tz)
    closures = schedule.closure_spans()
    for vt_id, minutes in vts:
        starts: list[dt.datetime] = []
        for i in range(schedule.horizon_days + 1):
            day = today + dt.timedelta(days=i)
            for s in timeutil.day_slots(
                day, schedule.windows_for(day.weekday()), tz, schedule.slot_step_minutes * 60, minutes * 60, closures
            ):
                starts.append(_ts(s))
        await c.execute(
            text(
                "INSERT INTO slots (visit_type_id, start_at, practitioner_id)"
                " SELECT :v, s, :r FROM unnest(CAST(:starts AS timestamptz[])) AS s"
            ),
            {"v": vt_id, "r": practitioner_id, "starts": starts},
        )
    await audit(c, "schedule", "admin", pid, {"windows": len(schedule.weekly)}, practitioner=practitioner_id)


# ------------------------------------------------------------------ search
SEARCH = text("""
SELECT s.practitioner_id, s.start_at
FROM slots s JOIN schedules sc ON sc.practitioner_id = s.practitioner_id
WHERE s.visit_type_id = :vt AND s.start_at >= :lo AND s.start_at < :hi
  AND s.start_at >= now() + sc.min_notice_s * interval '1 second'
  AND s.start_at <= now() + sc.horizon_s * interval '1 second'
  AND NOT EXISTS (
    SELECT 1 FROM claims c
    WHERE c.active AND c.practitioner_id = s.practitioner_id
      AND c.during && tstzrange(s.start_at, s.start_at + :dur * interval '1 second')
      AND (c.state = 'booked' OR c.expires_at > now()))
ORDER BY s.start_at, s.practitioner_id
""")


async def search(c: AsyncConnection, pid: str, vt: str, date: dt.date, days: int, actor: str) -> dict[str, Any]:
    row = await one(
        c,
        "SELECT p.timezone, v.duration_minutes FROM visit_types v JOIN practices p"
        " ON p.id = v.practice_id WHERE v.id = :v AND p.id = :p",
        v=vt,
        p=pid,
    )
    if row is None:
        raise Problem(404, "not_found", "practice or visit type")
    tzname, minutes = row
    tz = timeutil.zone(tzname)
    lo = timeutil.day_bounds(date, tz)[0]
    hi = timeutil.day_bounds(date + dt.timedelta(days=days - 1), tz)[1]
    dur = minutes * 60
    rows = (await c.execute(SEARCH, {"vt": vt, "lo": _ts(lo), "hi": _ts(hi), "dur": dur})).all()
    fmt = timeutil.format_instant
    slots = []
    for pr, start in rows:
        s = _epoch(start)
        slots.append({"practitioner_id": pr, "start": fmt(s, tzname), "end": fmt(s + dur, tzname)})
    await audit(
        c, "search", actor, pid, {"date": date.isoformat(), "days": days, "visit_type_id": vt, "count": len(slots)}
    )
    return {
        "practice_id": pid,
        "timezone": tzname,
        "visit_type_id": vt,
        "date": date.isoformat(),
        "days": days,
        "slots": slots,
    }


# ------------------------------------------------------------------ holds
async def hold(
    c: AsyncConnection, practitioner_id: str, vt: str, start: dt.datetime, ttl_s: int, actor: str
) -> dict[str, Any]:
    row = await one(
        c,
        "SELECT p.id, p.timezone, v.duration_minutes, sc.min_notice_s, sc.horizon_s,"
        " EXISTS (SELECT 1 FROM slots WHERE visit_type_id = :v AND start_at = :s AND practitioner_id = :r), now()"
        " FROM practitioners r JOIN practices p ON p.id = r.practice_id"
        " JOIN visit_types v ON v.id = :v AND v.practice_id = p.id"
        " LEFT JOIN schedules sc ON sc.practitioner_id = r.id WHERE r.id = :r FOR UPDATE OF r",
        r=practitioner_id,
        v=vt,
        s=start,
    )
    if row is None:
        raise Problem(404, "not_found", "practitioner or visit type")
    pid, tzname, minutes, notice, horizon, is_slot, now = row
    begin = _epoch(start)
    if not is_slot or start.second or start.microsecond:
        raise Problem(409, "slot_unavailable", "not_a_slot")
    if begin < _epoch(now) + (notice or 0) or (horizon is not None and begin > _epoch(now) + horizon):
        raise Problem(409, "slot_unavailable", "outside notice or horizon")
    end = begin + minutes * 60
    hold_id = f"{practitioner_id}.h{secrets.token_urlsafe(16)}"
    expires = now + dt.timedelta(seconds=ttl_s)
    rng = {"r": practitioner_id, "s": _ts(begin), "e": _ts(end)}
    await c.execute(
        text(
            "UPDATE claims SET active = false, state = 'expired' WHERE active AND practitioner_id = :r"
            " AND state = 'hold' AND expires_at <= now() AND during && tstzrange(:s, :e)"
        ),
        rng,
    )
    try:
        await c.execute(
            text(
                "INSERT INTO claims (id, practice_id, practitioner_id, visit_type_id, during, state, expires_at,"
                " active) VALUES (:id, :p, :r, :v, tstzrange(:s, :e), 'hold', :x, true)"
            ),
            {**rng, "id": hold_id, "p": pid, "v": vt, "x": expires},
        )
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", "") == "23P01":  # exclusion_violation: a live claim overlaps
            raise Problem(409, "slot_unavailable", "taken") from None
        raise
    await audit(
        c,
        "hold",
        actor,
        pid,
        {"visit_type_id": vt, "start": begin, "end": end},
        practitioner=practitioner_id,
        hold=hold_id,
    )
    return {
        "id": hold_id,
        "practice_id": pid,
        "practitioner_id": practitioner_id,
        "visit_type_id": vt,
        "start": timeutil.format_instant(begin, tzname),
        "end": timeutil.format_instant(end, tzname),
        "expires_at": expires.astimezone(timeutil.zone(tzname)).isoformat(timespec="milliseconds"),
        "status": "held",
    }


async def lock_practitioner(c: AsyncConnection, table: str, ident: str) -> None:
    """Every write first locks its practitioner's row: concurrent writers of one calendar queue up instead of
    deadlocking inside the exclusion constraint (two overlapping inserts each wait for the other; PostgreSQL
    only breaks that after deadlock_timeout, one pair per second)."""
    await c.execute(
        text(f"SELECT 1 FROM practitioners WHERE id = (SELECT practitioner_id FROM {table} WHERE id = :i) FOR UPDATE"),
        {"i": ident},
    )


async def release(c: AsyncConnection, hold_id: str, actor: str) -> None:
    await lock_practitioner(c, "claims", hold_id)
    row = await one(
        c,
        "SELECT state, active AND expires_at > now(), practice_id, practitioner_id FROM claims"
        " WHERE id = :h FOR UPDATE",
        h=hold_id,
    )
    if row is None:
        raise Problem(404, "not_found", f"hold {hold_id}")
    state, live, pid, pr = row
    if state == "booked":
        raise Problem(409, "hold_used", "the hold was booked")
    if state == "hold" and live:
        await c.execute(text("UPDATE claims SET active = false, state = 'released' WHERE id = :h"), {"h": hold_id})
        await audit(c, "release", actor, pid, {}, practitioner=pr, hold=hold_id)


# ------------------------------------------------------------------ appointments
async def book(c: AsyncConnection, hold_id: str, patient: dict[str, Any], actor: str) -> dict[str, Any]:
    await lock_practitioner(c, "claims", hold_id)
    row = await one(
        c,
        "SELECT c.state, c.active AND c.expires_at > now(), c.practice_id, c.practitioner_id, c.visit_type_id,"
        " lower(c.during), upper(c.during), p.timezone FROM claims c JOIN practices p ON p.id = c.practice_id"
        " WHERE c.id = :h FOR UPDATE OF c",
        h=hold_id,
    )
    if row is None:
        raise Problem(404, "not_found", f"hold {hold_id}")
    state, live, pid, pr, vt, start, end, tzname = row
    if state == "booked":
        raise Problem(409, "hold_used", "the hold was already booked")
    if state != "hold" or not live:
        raise Problem(410, "hold_expired", "the hold expired or was released")
    appt_id = f"{pid}.a{secrets.token_urlsafe(12)}"
    token = secrets.token_urlsafe(32)
    await c.execute(
        text("UPDATE claims SET state = 'booked', appointment_id = :a WHERE id = :h"), {"a": appt_id, "h": hold_id}
    )
    await c.execute(
        text(
            "INSERT INTO appointments (id, practice_id, practitioner_id, visit_type_id, start_at, end_at, status,"
            " version, patient, manage_hash, hold_id) VALUES (:id, :p, :r, :v, :s, :e, 'booked', 1,"
            " CAST(:pat AS jsonb), :mh, :h)"
        ),
        {
            "id": appt_id,
            "p": pid,
            "r": pr,
            "v": vt,
            "s": start,
            "e": end,
            "pat": _enc.encode(patient).decode(),
            "mh": hashlib.sha256(token.encode()).hexdigest(),
            "h": hold_id,
        },
    )
    await audit(c, "book", actor, pid, {"visit_type_id": vt}, practitioner=pr, hold=hold_id, appointment=appt_id)
    return _appointment(appt_id, "booked", 1, pid, pr, vt, start, end, patient, tzname, token)


def _appointment(
    aid: str,
    status: str,
    version: int,
    pid: str,
    pr: str,
    vt: str,
    start: dt.datetime,
    end: dt.datetime,
    patient: Any,
    tzname: str,
    token: str | None = None,
) -> dict[str, Any]:
    fmt = timeutil.format_instant
    return {
        "id": aid,
        "status": status,
        "version": version,
        "practice_id": pid,
        "practitioner_id": pr,
        "visit_type_id": vt,
        "start": fmt(_epoch(start), tzname),
        "end": fmt(_epoch(end), tzname),
        "patient": patient,
        "manage_token": token,
        "timezone": tzname,
    }


async def cancel(c: AsyncConnection, appt_id: str, reason: str, actor: str) -> dict[str, Any]:
    await lock_practitioner(c, "appointments", appt_id)
    row = await one(
        c,
        "SELECT a.status, a.version, a.practice_id, a.practitioner_id, a.visit_type_id, a.start_at, a.end_at,"
        " a.patient, a.hold_id, p.timezone FROM appointments a JOIN practices p ON p.id = a.practice_id"
        " WHERE a.id = :a FOR UPDATE OF a",
        a=appt_id,
    )
    if row is None:
        raise Problem(404, "not_found", f"appointment {appt_id}")
    status, version, pid, pr, vt, start, end, patient, hold_id, tzname = row
    if status == "booked":
        version += 1
        status = "cancelled"
        await c.execute(
            text(
                "UPDATE appointments SET status = 'cancelled', version = :v, cancel_reason = :r,"
                " updated_at = now() WHERE id = :a"
            ),
            {"v": version, "r": reason, "a": appt_id},
        )
        await c.execute(text("UPDATE claims SET active = false, state = 'cancelled' WHERE id = :h"), {"h": hold_id})
        await audit(c, "cancel", actor, pid, {"version": version}, practitioner=pr, appointment=appt_id)
    return _appointment(appt_id, status, version, pid, pr, vt, start, end, patient, tzname)
