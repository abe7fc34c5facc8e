"""Reading the audit trail (GET /v1/audit) and verifying its hash chains (`booking audit verify`)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine

from persistence import chain
from persistence.tables import audit_events, audit_heads


def _cursor(at_ms: int, ident: str) -> str:
    return base64.urlsafe_b64encode(f"{at_ms}:{ident}".encode()).decode()


def _uncursor(cursor: str) -> tuple[int, str]:
    raw = base64.urlsafe_b64decode(cursor.encode()).decode()
    at, _, ident = raw.partition(":")
    if "\x00" in ident:
        raise ValueError("not a cursor of this API")  # no stored id holds NUL (PostgreSQL text cannot)
    return int(at), ident


def query(
    db: Engine,
    *,
    practice_id: str | None = None,
    appointment_id: str | None = None,
    hold_id: str | None = None,
    action: str | None = None,
    since_ms: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows oldest first; ``cursor`` continues after the last row of the previous page."""
    if any("\x00" in v for v in (practice_id, appointment_id, hold_id, action) if v):
        return [], None  # PostgreSQL text cannot hold NUL: no row matches (and the driver would refuse the query)
    t = audit_events
    q = select(t)
    for col, value in (
        (t.c.practice_id, practice_id),
        (t.c.appointment_id, appointment_id),
        (t.c.hold_id, hold_id),
        (t.c.action, action),
    ):
        if value is not None:
            q = q.where(col == value)
    if since_ms is not None:
        q = q.where(t.c.at_ms >= since_ms)
    if cursor:
        at, ident = _uncursor(cursor)
        q = q.where(or_(t.c.at_ms > at, and_(t.c.at_ms == at, t.c.id > ident)))
    q = q.order_by(t.c.at_ms, t.c.id).limit(limit + 1)
    with db.connect() as c:
        rows = [dict(r) for r in c.execute(q).mappings()]
    nxt = _cursor(rows[limit - 1]["at_ms"], rows[limit - 1]["id"]) if len(rows) > limit else None
    return rows[:limit], nxt


def verify(db: Engine, out: Callable[[str], None] = print, practice_id: str | None = None) -> bool:
    """Recompute every practice's chain. Names the first altered row of each broken chain."""
    t = audit_events
    q = select(t).order_by(t.c.practice_id, t.c.chain_index)
    if practice_id:
        q = q.where(t.c.practice_id == practice_id)
    ok = True
    checked = 0
    current, prev, expected_index, broken = None, chain.GENESIS, 1, False
    lasts: dict[str, tuple[int, str]] = {}
    with db.connect() as c:
        for row in c.execute(q).mappings():
            if row["practice_id"] != current:
                current, prev, expected_index, broken = row["practice_id"], chain.GENESIS, 1, False
            checked += 1
            lasts[row["practice_id"]] = (int(row["chain_index"]), str(row["hash"]))
            if broken:
                continue
            problem = None
            if row["chain_index"] != expected_index:
                problem = f"chain index {row['chain_index']} where {expected_index} was expected (a row is missing)"
            elif row["prev_hash"] != prev:
                problem = "its prev_hash does not match the previous row"
            elif chain.link(prev, row) != row["hash"]:
                problem = "its content does not match its hash (altered)"
            if problem:
                out(
                    f"AUDIT CHAIN BROKEN: practice {row['practice_id']} row {row['id']} "
                    f"(chain index {row['chain_index']}, action {row['action']}): {problem}"
                )
                ok, broken = False, True
                continue
            prev, expected_index = row["hash"], expected_index + 1
        # the last row of each chain must be the head the persister recorded: rows cut off the end show here
        heads = select(audit_heads.c.practice_id, audit_heads.c.chain_index, audit_heads.c.hash)
        if practice_id:
            heads = heads.where(audit_heads.c.practice_id == practice_id)
        for pid, index, digest in c.execute(heads):
            if index and lasts.get(pid) != (int(index), str(digest)):
                out(
                    f"AUDIT CHAIN BROKEN: practice {pid}: the chain ends at {lasts.get(pid, (0, ''))[0]} but the "
                    f"persister recorded {index} rows (rows were removed from its end)"
                )
                ok = False
    out(f"audit verify: {checked} row(s) checked, {'all chains intact' if ok else 'chain(s) BROKEN'}")
    return ok
