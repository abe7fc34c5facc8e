"""The webhook tables: endpoints (registered by the API), the durable record of events and one delivery row per
(endpoint, event) (written by the outbox in the transaction that also writes notification rows, before the
stream entries are acknowledged), replays, and the reads the API lists."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Connection, Engine

from persistence.audit_rows import insert_for
from persistence.tables import webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events
from persistence.webhooks.events import Prepared

E, V, D, A = webhook_endpoints, webhook_events, webhook_deliveries, webhook_attempts
LISTED = ("active", "disabled")  # 'deleted' endpoints are gone for the API


def now_ms() -> int:
    return int(time.time() * 1000)


def new_endpoint_id() -> str:
    return "wh_" + secrets.token_hex(12)


def create(
    db: Engine, practice_id: str, url: str, events: Sequence[str], include_patient: bool, secret: str
) -> dict[str, Any]:
    row = {
        "id": new_endpoint_id(),
        "practice_id": practice_id,
        "url": url,
        "events": msgspec.json.encode(list(events)).decode(),
        "include_patient": 1 if include_patient else 0,
        "secret": secret,
        "status": "active",
        "last_error": None,
        "disabled_at_ms": None,
        "created_at_ms": now_ms(),
        "lease_owner": None,
        "lease_until_ms": None,
    }
    with db.begin() as c:
        c.execute(E.insert().values(row))
    return row


def listed(db: Engine, practice_id: str) -> list[dict[str, Any]]:
    q = select(E).where(E.c.practice_id == practice_id, E.c.status.in_(LISTED)).order_by(E.c.created_at_ms, E.c.id)
    with db.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def one(db: Engine, practice_id: str, endpoint_id: str) -> dict[str, Any] | None:
    q = select(E).where(E.c.id == endpoint_id, E.c.practice_id == practice_id, E.c.status.in_(LISTED))
    with db.connect() as c:
        r = c.execute(q).mappings().one_or_none()
    return dict(r) if r is not None else None


def remove(db: Engine, practice_id: str, endpoint_id: str) -> bool:
    """Mark the endpoint deleted (nothing more is sent to it) and forget its pending deliveries."""
    with db.begin() as c:
        n = c.execute(
            update(E)
            .where(E.c.id == endpoint_id, E.c.practice_id == practice_id, E.c.status.in_(LISTED))
            .values(status="deleted")
        ).rowcount
        if n:
            c.execute(delete(D).where(D.c.endpoint_id == endpoint_id, D.c.status == "pending"))
    return bool(n)


def attempts(db: Engine, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
    """The endpoint's attempts, newest first."""
    q = select(A).where(A.c.endpoint_id == endpoint_id).order_by(A.c.id.desc()).limit(limit)
    with db.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def _delivery(endpoint_id: str, ev: Any, at: int) -> dict[str, Any]:
    return {
        "endpoint_id": endpoint_id,
        "event_id": ev.id,
        "subject_id": ev.subject_id,
        "ord_ms": ev.ord_ms,
        "ord_n": ev.ord_n,
        "status": "pending",
        "attempts": 0,
        "next_at_ms": at,
        "window_start_ms": at,
        "last_error": None,
        "delivered_at_ms": None,
    }


def record(conn: Connection, prepared: Sequence[Prepared]) -> int:
    """Store the events of practices that have webhook endpoints (active or disabled: a replay may want them;
    a practice without any stores nothing), and a pending delivery for each active endpoint that asked for the
    type (in the outbox's transaction). A replayed stream entry finds its rows there: stored once. Returns the
    number of deliveries made."""
    if not prepared:
        return 0
    practices = sorted({p.practice_id for p in prepared})
    endpoints = conn.execute(
        select(E.c.id, E.c.practice_id, E.c.events, E.c.status).where(
            E.c.practice_id.in_(practices), E.c.status.in_(LISTED)
        )
    ).all()
    having = {r.practice_id for r in endpoints}
    kept = [p for p in prepared if p.practice_id in having]
    if not kept:
        return 0
    conn.execute(insert_for(conn, V).values([msgspec.structs.asdict(p) for p in kept]).on_conflict_do_nothing())
    wants = [(r.id, r.practice_id, set(msgspec.json.decode(r.events))) for r in endpoints if r.status == "active"]
    at = now_ms()
    rows = [
        _delivery(eid, p, at) for p in kept for eid, pid, types in wants if pid == p.practice_id and p.type in types
    ]
    if rows:
        conn.execute(insert_for(conn, D).values(rows).on_conflict_do_nothing())
    return len(rows)


def replay(db: Engine, endpoint: dict[str, Any], since_ms: int) -> int:
    """Send again every event of the endpoint's practice and types after ``since_ms``, from the durable record:
    each delivery pending again, due now, with a fresh retry window. A disabled endpoint becomes active again.
    Returns the number of events to be sent."""
    types = msgspec.json.decode(endpoint["events"])
    at = now_ms()
    with db.begin() as c:
        found = c.execute(
            select(V.c.id, V.c.subject_id, V.c.ord_ms, V.c.ord_n).where(
                V.c.practice_id == endpoint["practice_id"], V.c.type.in_(types), V.c.at_ms > since_ms
            )
        ).all()
        ids = [r.id for r in found]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            c.execute(
                update(D)
                .where(D.c.endpoint_id == endpoint["id"], D.c.event_id.in_(chunk))
                .values(status="pending", next_at_ms=at, window_start_ms=at, delivered_at_ms=None)
            )
        rows = [_delivery(endpoint["id"], r, at) for r in found]
        for i in range(0, len(rows), 500):
            c.execute(insert_for(c, D).values(rows[i : i + 500]).on_conflict_do_nothing())
        # whatever else is pending is tried now too, with a fresh window (a disabled endpoint's backlog)
        c.execute(
            update(D)
            .where(D.c.endpoint_id == endpoint["id"], D.c.status == "pending")
            .values(next_at_ms=at, window_start_ms=at)
        )
        c.execute(
            update(E)
            .where(and_(E.c.id == endpoint["id"], E.c.status == "disabled"))
            .values(status="active", disabled_at_ms=None)
        )
    return len(ids)
