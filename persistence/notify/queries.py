"""Reads of the notification table for the API and /metrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from persistence.tables import notifications


def notification_rows(db: Engine, appointment_id: str) -> list[dict[str, Any]]:
    t = notifications
    q = select(t).where(t.c.appointment_id == appointment_id).order_by(t.c.version, t.c.due_at_ms, t.c.kind)
    with db.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def counts_by_status(db: Engine) -> dict[tuple[str, str], int]:
    t = notifications
    with db.connect() as c:
        rows = c.execute(select(t.c.kind, t.c.status, func.count()).group_by(t.c.kind, t.c.status)).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}
