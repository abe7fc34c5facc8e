"""App keys in the durable store (API.md "App keys"): the API writes a key here before Redis, and a revocation here
before Redis, so a Redis that lost its data gets every live key back from reconciliation (persistence/reconcile.py)
and never a revoked one. Hashes only, like Redis."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from engine.model import AppKey
from persistence.audit_rows import insert_for
from persistence.tables import app_keys


def _row(key: AppKey, revoked_ms: int | None = None) -> dict[str, Any]:
    practices = None if key.practice_ids is None else json.dumps(key.practice_ids)
    return {"id": key.id, "name": key.name, "practice_ids": practices, "hash": key.hash,
            "created_ms": key.created_ms, "revoked_ms": revoked_ms}  # fmt: skip


def key_of(row: Any) -> AppKey:
    practices = row["practice_ids"]
    return AppKey(id=row["id"], name=row["name"], practice_ids=None if practices is None else json.loads(practices),
                  hash=row["hash"], created_ms=row["created_ms"])  # fmt: skip


def store(db: Engine, key: AppKey) -> None:
    """A new key, live."""
    with db.begin() as c:
        c.execute(insert_for(c, app_keys).values(**_row(key)))


def revoke(db: Engine, key_id: str, record: AppKey | None, now_ms: int) -> bool:
    """Revoke ``key_id`` here; True when a live key was revoked. ``record`` (the key as Redis holds it, when it does)
    stores the revocation even for a key this store lacks (one issued before migration 0010); a revocation is
    final (the first revoked_ms stays)."""
    with db.begin() as c:
        if record is not None:
            ins = insert_for(c, app_keys).values(**_row(record, now_ms))
            was = c.execute(select(app_keys.c.revoked_ms).where(app_keys.c.id == key_id)).first()
            c.execute(
                ins.on_conflict_do_update(
                    index_elements=["id"],
                    set_={"revoked_ms": func.coalesce(app_keys.c.revoked_ms, ins.excluded.revoked_ms)},
                )
            )
            return was is None or was[0] is None
        done = c.execute(
            update(app_keys).where(app_keys.c.id == key_id, app_keys.c.revoked_ms.is_(None)).values(revoked_ms=now_ms)
        )
        return bool(done.rowcount)


def load(db: Engine) -> list[Any]:
    """Every key, live or revoked (reconciliation)."""
    with db.connect() as c:
        return list(c.execute(select(app_keys)).mappings().all())


def adopt(db: Engine, keys: Iterable[AppKey]) -> list[str]:
    """Store live keys that only Redis holds (issued before migration 0010); a row already here (live, or revoked
    meanwhile) stays as it is. Returns the ids stored."""
    stored = []
    with db.begin() as c:
        for key in keys:
            if c.execute(insert_for(c, app_keys).values(**_row(key)).on_conflict_do_nothing()).rowcount:
                stored.append(key.id)
    return stored
