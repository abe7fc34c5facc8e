"""The rows of the audit hash chain: where a practice's chain ends (its head, locked per transaction), the row an
event becomes, the row recording a break in the numbering, and what makes a stored row the same event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import and_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from engine import events as ev
from persistence import chain
from persistence.tables import audit_events, audit_heads

UTC = dt.timezone.utc
Predecessor = Callable[[ev.Event], "str | None"]  # the audited stream entry before an event (None: none left)


def utc(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, UTC)


def insert_for(conn: Connection, table: Any) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def audit_id(e: ev.Event) -> str:
    return f"{e.practice_id}-{e.event_id}"


class Head:
    """Where a practice's audit chain ends: ``last_seq`` the highest ``seq`` ever stored, ``index`` and
    ``hash`` its last row's chain index and hash, ``tail`` that row's ``seq`` (below ``last_seq`` after Redis's
    counter went back)."""

    __slots__ = ("hash", "index", "last_seq", "tail")

    def __init__(self, last_seq: int, index: int, digest: str, tail: int | None) -> None:
        self.last_seq, self.index, self.hash = last_seq, index, digest
        self.tail = last_seq if tail is None else tail


def lock_heads(conn: Connection, practice_ids: list[str]) -> dict[str, Head]:
    """The audit chain heads of these practices, locked for this transaction (in id order, as every
    persister locks them, so two persisters never deadlock), created where missing."""
    conn.execute(
        insert_for(conn, audit_heads)
        .values([{"practice_id": p, "last_seq": 0, "chain_index": 0, "hash": chain.GENESIS} for p in practice_ids])
        .on_conflict_do_nothing()
    )
    h, a = audit_heads, audit_events
    last_row = and_(a.c.practice_id == h.c.practice_id, a.c.chain_index == h.c.chain_index)
    q = (
        select(h.c.practice_id, h.c.last_seq, h.c.chain_index, h.c.hash, a.c.seq)
        .select_from(h.outerjoin(a, last_row))
        .where(h.c.practice_id.in_(practice_ids))
        .order_by(h.c.practice_id)
    )
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(of=h)
    return {
        str(r[0]): Head(int(r[1]), int(r[2]), str(r[3]), None if r[4] is None else int(r[4])) for r in conn.execute(q)
    }


# The columns of an audit row that come from its event: a stored row with the same id is a replay only
# when every one of them matches.
CONTENT = ("seq", "at_ms", "action", "actor", "practitioner_id", "hold_id", "appointment_id", "request_id", "detail")


def event_columns(e: ev.Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at_ms": e.at,
        "action": e.__struct_config__.tag,
        "actor": e.actor,
        "practitioner_id": e.practitioner_id or None,
        "hold_id": e.hold_id or None,
        "appointment_id": e.appointment_id or None,
        "request_id": e.request_id or None,
        "detail": e.detail_raw,
    }


def audit_row(e: ev.Event, chain_index: int, prev: str) -> dict[str, Any]:
    row = {
        "id": audit_id(e),
        "practice_id": e.practice_id,
        "chain_index": chain_index,
        "at": utc(e.at / 1000),
        **event_columns(e),
        "prev_hash": prev,
    }
    row["hash"] = chain.link(prev, row)
    return row


BREAK_ACTOR = "system:persister"


def break_row(e: ev.Event, kind: str, head: Head, chain_index: int, prev: str) -> dict[str, Any]:
    """The chain row recording that ``e``'s ``seq`` does not follow the chain's last row: ``seq_rollback``
    (Redis's counter went back: its data is older than what is stored) or ``seq_gap`` (it jumped ahead)."""
    detail = {"chain_seq": head.tail, "redis_seq": e.seq, "stored_seq": head.last_seq, "event_id": e.event_id}
    row = {
        "id": f"{e.practice_id}-{kind}-{chain_index}",
        "practice_id": e.practice_id,
        "chain_index": chain_index,
        "seq": head.tail,
        "at_ms": e.at,
        "at": utc(e.at / 1000),
        "action": kind,
        "actor": BREAK_ACTOR,
        "practitioner_id": None,
        "hold_id": None,
        "appointment_id": None,
        "request_id": None,
        "detail": msgspec.json.encode(detail).decode(),
        "prev_hash": prev,
    }
    row["hash"] = chain.link(prev, row)
    return row


def stored_rows(conn: Connection, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    q = select(audit_events.c.id, *(audit_events.c[n] for n in CONTENT)).where(audit_events.c.id.in_(ids))
    return {str(r["id"]): r for r in conn.execute(q).mappings()}


def same_event(row: Any, e: ev.Event) -> bool:
    mine = event_columns(e)
    return all(row[n] == mine[n] for n in CONTENT)


def follows_stored(
    conn: Connection, e: ev.Event, head: Head, predecessor: Predecessor | None, chained: set[str]
) -> bool:
    """Whether ``e``, whose ``seq`` does not follow the chain's last row, may be appended now: the audited
    entry before it in its stream is stored (or gone), so nothing that ran before it is still on its way.
    Without a ``predecessor`` (the writer used on its own) a rollback is taken as in order, a gap waits."""
    if predecessor is None:
        return e.seq <= head.tail
    before = predecessor(e)
    if before is None:
        return True
    ident = f"{e.practice_id}-{before}"
    if ident in chained:
        return True
    return conn.execute(select(audit_events.c.id).where(audit_events.c.id == ident)).first() is not None
