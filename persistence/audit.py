"""Reading the audit trail (GET /v1/audit) and verifying its hash chains (`booking audit verify`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection, Engine

from persistence import chain
from persistence.tables import audit_events, audit_heads, deployment_secrets, practices

# A cursor is base64url(``<at_ms>:<row id>``) "." base64url(HMAC-SHA256 of it), keyed by the deployment's
# 'audit_cursor' secret (made by migration 0004, shared by every process through the database).
_B64 = re.compile(r"[A-Za-z0-9_-]{2,200}")
_POSITION = re.compile(r"(0|[1-9][0-9]{0,17}):([^\x00-\x1f]{1,64})")
_CONTEXT = b"booking audit cursor\x00"


class InvalidCursorError(ValueError):
    """A cursor this API did not issue (forged, truncated, altered or signed with another key)."""


def _cursor_key(c: Connection) -> bytes:
    q = select(deployment_secrets.c.value).where(deployment_secrets.c.name == "audit_cursor")
    value = c.execute(q).scalar()
    if not value:
        raise RuntimeError("the deployment secret 'audit_cursor' is missing (docs/operations.md, the audit chain)")
    return str(value).encode()


def _mac(key: bytes, position: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + position, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise InvalidCursorError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursorError("not base64url") from None


def _cursor(key: bytes, at_ms: int, ident: str) -> str:
    position = f"{at_ms}:{ident}".encode()
    return f"{_b64(position)}.{_b64(_mac(key, position))}"


def _uncursor(key: bytes, cursor: str) -> tuple[int, str]:
    """The position a cursor names, only if this deployment signed it."""
    body, dot, tag = cursor.partition(".")
    if not dot:
        raise InvalidCursorError("unsigned")
    position = _unb64(body)
    if not hmac.compare_digest(_unb64(tag), _mac(key, position)):
        raise InvalidCursorError("bad signature")
    m = _POSITION.fullmatch(position.decode(errors="replace"))
    if m is None:  # only a leaked key could get here
        raise InvalidCursorError("malformed")
    return int(m.group(1)), m.group(2)


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
    """Rows oldest first; ``cursor`` continues after the last row of the previous page.
    Raises ``InvalidCursorError`` for a cursor this deployment did not sign."""
    t = audit_events
    q = select(t)
    filters = ((t.c.practice_id, practice_id), (t.c.appointment_id, appointment_id), (t.c.hold_id, hold_id))
    for col, value in (*filters, (t.c.action, action)):
        if value is not None:
            q = q.where(col == value)
    if since_ms is not None:
        q = q.where(t.c.at_ms >= since_ms)
    with db.connect() as c:
        if cursor:
            at, ident = _uncursor(_cursor_key(c), cursor)
            q = q.where(or_(t.c.at_ms > at, and_(t.c.at_ms == at, t.c.id > ident)))
        if any(value is not None and "\x00" in value for _, value in filters):
            return [], None  # no id holds a NUL (PostgreSQL text cannot even be asked about one)
        q = q.order_by(t.c.at_ms, t.c.id).limit(limit + 1)
        rows = [dict(r) for r in c.execute(q).mappings()]
        last = rows[limit - 1] if len(rows) > limit else None
        nxt = _cursor(_cursor_key(c), last["at_ms"], last["id"]) if last else None
    return rows[:limit], nxt


def known_practice(db: Engine, practice_id: str) -> bool:
    """Whether the database knows the practice (its row, or any audit event of it)."""
    with db.connect() as c:
        row = c.execute(select(practices.c.id).where(practices.c.id == practice_id)).first()
        if row is None:
            row = c.execute(select(audit_events.c.id).where(audit_events.c.practice_id == practice_id).limit(1)).first()
    return row is not None


def verify(db: Engine, out: Callable[[str], None] = print, practice_id: str | None = None) -> bool:
    """Recompute every practice's chain. Names the first altered row of each broken chain. Every column counts:
    version 2 hashes cover them all; version 1 rows (before migration 0004) are checked by
    ``chain.legacy_problem`` for what their hash leaves out."""
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
            elif row["hash_version"] not in chain.VERSIONS:
                problem = f"its hash_version {row['hash_version']} is not a known canonical form (altered)"
            elif chain.link(prev, row) != row["hash"]:
                problem = "its content does not match its hash (altered)"
            elif row["hash_version"] == 1:
                problem = chain.legacy_problem(row)
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
