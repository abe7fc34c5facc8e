"""The persister's quarantine: events set aside so that one poison event never stalls the stream (issue 22).

An event the database refuses (``DataError``: a NUL byte in a name, text too long for its column;
``IntegrityError``: a booking the exclusion constraint refuses) or that cannot be decoded is stored here raw, and
acknowledged: the events after it, of every practice, flow on. Only connection-level errors mean "database
unavailable" (the batch is retried as it is). An audited event keeps its place in the audit chain (its row
carries no patient data, so it stores) and only its effects wait here (``audited`` 1); later events of the same
entity (an appointment, a waitlist entry...) wait behind it, so that a replay applies them in stream order.

``/metrics`` counts the open rows (``booking_persister_quarantined_events``), ``/readyz`` names them
(``quarantined``), and ``booking reconcile --replay-quarantine`` applies them again once an operator fixed the
cause (docs/operations.md, "Quarantine").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError

from engine import events as ev
from engine import keys
from persistence.audit_rows import audit_id, insert_for
from persistence.tables import quarantined_events as q

# What one event can make the database refuse (UnicodeError: a text the driver cannot encode, such as a lone
# surrogate). Anything else, an OperationalError above all, is about the database, not the event.
POISON: tuple[type[BaseException], ...] = (DataError, IntegrityError, UnicodeError)
PUBLISHED = 100  # at most this many rows named in Redis (/readyz); the count is always exact


def clean(text: str, limit: int = 2000) -> str:
    """A message fit for a text column and a log line: control characters spelled out, bounded."""
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text[:limit])


def reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return clean(f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}")


def entities_of(e: ev.Event) -> list[str]:
    """What the event changes, for ordering: later events of any of these wait behind a quarantined one (a booking
    changes its appointment and its hold)."""
    out: list[str] = []
    if isinstance(e, ev.AppointmentBooked | ev.AppointmentRescheduled | ev.AppointmentCancelled):
        out.append(f"appointment:{e.appointment_id}")
    if isinstance(e, ev.WaitlistEvent):
        out.append(f"waitlist:{e.data.id}")
    if isinstance(e, ev.ScheduleChanged):
        out.append(f"schedule:{e.practitioner_id}")
    if e.hold_id and not isinstance(e, ev.SearchPerformed | ev.AppointmentCancelled):
        out.append(f"hold:{e.hold_id}")
    return out


def entity_of(e: ev.Event) -> str | None:
    """The ``entity`` column: the entities of ``e``, space-separated (None: none)."""
    return " ".join(entities_of(e)) or None


def raw_fields(fields: Mapping[Any, Any]) -> str:
    """A stream entry's fields as JSON text (every control character escaped: it always stores)."""
    return msgspec.json.encode({_text(k): _text(v) for k, v in fields.items()}).decode()


def _text(v: Any) -> str:
    return v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)


def raw_of(e: ev.Event) -> str:
    """The fields of ``e`` as its script wrote them (when the persister did not hand the entry's own)."""
    return raw_fields({**ev.to_stream(e), "detail": e.detail_raw})


def row(
    practice_id: str, entry_id: str, action: str, raw: str, why: str, *, entity: str | None, audited: bool
) -> dict[str, Any]:
    return {
        "id": f"{practice_id}-{entry_id}",
        "practice_id": practice_id,
        "entry_id": entry_id,
        "action": action,
        "entity": entity,
        "audited": 1 if audited else 0,
        "raw": raw,
        "error": clean(why),
        "at_ms": int(time.time() * 1000),
        "attempts": 1,
        "replayed_at_ms": None,
    }


def event_row(e: ev.Event, raw: str | None, why: str, *, audited: bool) -> dict[str, Any]:
    return row(
        e.practice_id,
        e.event_id,
        str(e.__struct_config__.tag),
        raw if raw is not None else raw_of(e),
        why,
        entity=entity_of(e),
        audited=audited,
    )


def set_aside(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert_for(conn, q).values(rows).on_conflict_do_nothing())


def open_entities(conn: Connection, practice_ids: Iterable[str]) -> set[tuple[str, str]]:
    """(practice, entity) of the open rows of these practices: their later events wait behind them."""
    ids = sorted(set(practice_ids))
    if not ids:
        return set()
    got = conn.execute(
        select(q.c.practice_id, q.c.entity).where(
            q.c.practice_id.in_(ids), q.c.replayed_at_ms.is_(None), q.c.entity.is_not(None)
        )
    )
    return {(str(p), one) for p, ent in got for one in str(ent).split()}


def is_open(conn: Connection, ident: str) -> bool:
    return conn.execute(select(q.c.id).where(q.c.id == ident, q.c.replayed_at_ms.is_(None))).first() is not None


def count_open(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(q).where(q.c.replayed_at_ms.is_(None))).scalar_one())


def publish(redis: Any, db: Engine) -> int:
    """Name the open rows in Redis (keys.PERSIST_QUARANTINED, read by /readyz): the database is the truth, this
    copy is rebuilt from it. Returns the number of open rows."""
    with db.connect() as conn:
        rows = conn.execute(
            select(q.c.id, q.c.at_ms, q.c.action, q.c.error)
            .where(q.c.replayed_at_ms.is_(None))
            .order_by(q.c.at_ms, q.c.id)
            .limit(PUBLISHED)
        ).all()
    total = count_open(db) if len(rows) >= PUBLISHED else len(rows)
    pipe = redis.pipeline(transaction=False)
    pipe.delete(keys.PERSIST_QUARANTINED)
    if rows:
        pipe.hset(keys.PERSIST_QUARANTINED, mapping={str(r[0]): f"{r[1]} {r[2]} {r[3]}"[:500] for r in rows})
    pipe.execute()
    return total


# ---------------------------------------------------------------- replay (`booking reconcile --replay-quarantine`)
class _Refused(Exception):
    pass


_STILL_REFUSED: tuple[type[BaseException], ...] = (
    *POISON,
    _Refused,
    msgspec.DecodeError,
    msgspec.ValidationError,
    ValueError,
)


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _stripped(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROLS.sub("", value)
    if isinstance(value, list):
        return [_stripped(v) for v in value]
    if isinstance(value, dict):
        return {k: _stripped(v) for k, v in value.items()}
    return value


def strip_controls(fields: dict[str, str]) -> dict[str, str]:
    """The fields with every control character but tab, LF and CR removed from the texts of ``data`` (the record
    the persister stores), as the API refuses them since issue 22."""
    if not fields.get("data"):
        return fields
    return {**fields, "data": msgspec.json.encode(_stripped(msgspec.json.decode(fields["data"]))).decode()}


def replay(db: Engine, out: Callable[[str], None] = print, *, strip: bool = False) -> tuple[int, int]:
    """Apply every open row again, oldest entry first per practice; a row the database still refuses stays (its
    ``attempts`` and ``error`` updated) and the later rows of its entity wait behind it. Returns (replayed, left).
    ``strip``: remove control characters from the texts of each event's record first (``--strip-controls``)."""
    from persistence import writer

    with db.connect() as conn:
        rows = conn.execute(select(q).where(q.c.replayed_at_ms.is_(None))).mappings().all()
    rows = sorted(rows, key=lambda r: (r["practice_id"], writer.entry_order(r["entry_id"])))
    blocked: set[tuple[str, str]] = set()
    replayed = left = 0
    for r in rows:
        mine = {(r["practice_id"], one) for one in (r["entity"] or "").split()}
        if mine & blocked:
            out(f"quarantine: {r['id']} ({r['action']}) waits behind an earlier event of {r['entity']}")
            blocked |= mine
            left += 1
            continue
        try:
            fields = msgspec.json.decode(r["raw"], type=dict[str, str])
            if strip:
                fields = strip_controls(fields)
            e = ev.from_stream(r["entry_id"], fields)
            with db.begin() as conn:
                if r["audited"]:
                    writer.effects_of(conn, e)
                else:
                    done = writer.apply(conn, [e], careful=True)
                    if audit_id(e) not in done or done.quarantined:
                        raise _Refused(done.quarantined.get(audit_id(e), "not stored (waits for its predecessor)"))
                conn.execute(
                    update(q)
                    .where(q.c.id == r["id"])
                    .values(replayed_at_ms=int(time.time() * 1000), attempts=q.c.attempts + 1)
                )
        except _STILL_REFUSED as exc:
            why = str(exc) if isinstance(exc, _Refused) else reason(exc)
            with db.begin() as conn:
                conn.execute(update(q).where(q.c.id == r["id"]).values(attempts=q.c.attempts + 1, error=clean(why)))
            out(f"quarantine: {r['id']} ({r['action']}) still refused: {clean(why, 300)}")
            blocked |= mine
            left += 1
            continue
        out(f"quarantine: {r['id']} ({r['action']}) replayed")
        replayed += 1
    out(f"quarantine: {replayed} replayed, {left} left")
    return replayed, left
