"""App keys: consumer booking apps' backends acting for their end users (API.md "App keys")."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Request, delete, post
from litestar.params import FromPath, JSONBody

from api.auth import require_admin
from api.routes.common import caller, engine, strict
from engine import access, errors, ids
from engine.model import Name
from persistence import app_keys as app_key_rows

PracticeIds = Annotated[list[str], msgspec.Meta(max_length=1000)]


class AppKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    practice_ids: PracticeIds | None = None  # None: every practice


class AppKeyOut(msgspec.Struct):
    id: str
    key: str  # shown once: only its SHA-256 is stored
    name: str
    practice_ids: list[str] | None
    created_at: str


@post(
    "/v1/app-keys",
    status_code=201,
    tags=["access"],
    summary="Create an app key (admin only; the key is shown once and stored only as a hash)",
)
async def create_app_key(request: Request[Any, Any, Any], data: JSONBody[AppKeyIn]) -> AppKeyOut:
    data = await strict(request, AppKeyIn)
    p, _ = await caller(request)
    require_admin(p)
    practices = None if data.practice_ids is None else sorted(set(data.practice_ids))
    for pid in practices or ():
        if ids.practice_of(pid, "p") is None:
            raise errors.NotFoundError("practice", pid)
    eng = engine(request)
    key, token = await access.new_app_key(eng, data.name, practices)
    # durable first (persistence/app_keys.py): once Redis answers with it, a Redis that loses its data gets it back
    db = request.app.state.db
    await asyncio.to_thread(app_key_rows.store, db, key)
    try:
        await access.save_app_key(eng, key)
    except BaseException:
        # not live, never shown: revoked in the database too, so that reconciliation never puts it back
        with contextlib.suppress(Exception):
            await asyncio.to_thread(app_key_rows.revoke, db, key.id, None, eng.now_ms())
        raise
    return AppKeyOut(
        id=key.id,
        key=token,
        name=key.name,
        practice_ids=key.practice_ids,
        created_at=dt.datetime.fromtimestamp(key.created_ms / 1000, dt.UTC).isoformat(),
    )


@delete("/v1/app-keys/{key_id:str}", status_code=204, tags=["access"], summary="Revoke an app key at once (admin only)")
async def revoke_app_key(request: Request[Any, Any, Any], key_id: FromPath[str]) -> None:
    p, _ = await caller(request)
    require_admin(p)
    eng = engine(request)
    # the database first: a revocation that Redis then loses (or that a reconciliation races) still stands
    record = await access.app_key_record(eng, key_id)
    revoked = await asyncio.to_thread(app_key_rows.revoke, request.app.state.db, key_id, record, eng.now_ms())
    await access.revoke_app_key(eng, key_id, tombstone=revoked)  # NotFoundError when neither held it live


ROUTES = [create_app_key, revoke_app_key]
