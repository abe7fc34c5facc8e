"""The comparator's HTTP API: the same paths and JSON as API.md for setup, search, holds and appointments.

Run: `uvicorn --factory benchmarks.pgonly.app:create_app` with PGONLY_DATABASE_URL (and HOLD_TTL_SECONDS).
Any bearer token is accepted (no abuse limits): the benchmark sends the admin token to the engine too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.exceptions import HTTPException
from sqlalchemy.ext.asyncio import create_async_engine

from api.hooks import quiet_logging
from benchmarks.pgonly import store
from engine import timeutil
from engine.model import Patient, Schedule

_enc = msgspec.json.Encoder()


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    practitioner_id: str
    visit_type_id: str
    start: dt.datetime


class BookIn(msgspec.Struct, forbid_unknown_fields=True):
    hold_id: str
    patient: Patient


def _json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(content=_enc.encode(body), status_code=status, media_type="application/json")


def _problem(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, store.Problem):
        status, code, detail = exc.status, exc.code, exc.detail
    elif isinstance(exc, HTTPException):
        status, code, detail = (
            exc.status_code,
            "not_found" if exc.status_code == 404 else "validation_error",
            exc.detail,
        )
    elif isinstance(exc, msgspec.ValidationError | msgspec.DecodeError | ValueError | KeyError):
        status, code, detail = 422, "validation_error", str(exc)
    else:
        status, code, detail = 500, "internal_error", exc.__class__.__name__
    body = {"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code}
    return Response(content=_enc.encode(body), status_code=status, media_type="application/problem+json")


def _db(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.db


async def _body(request: Request[Any, Any, Any], kind: type[Any]) -> Any:
    return msgspec.json.decode(await request.body(), type=kind)


async def _created(request: Request[Any, Any, Any], table: str, row: dict[str, Any]) -> Response[bytes]:
    async with _db(request).begin() as c:
        await store.add_row(c, table, row)
    return _json(row, 201)


# ------------------------------------------------------------------ setup
@post("/v1/practices")
async def create_practice(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = await _body(request, dict)
    timeutil.zone(body["timezone"])
    row = {"id": os.urandom(8).hex(), "name": body["name"], "timezone": body["timezone"]}
    return await _created(request, "practices", row)


@post("/v1/practices/{practice_id:str}/practitioners")
async def add_practitioner(request: Request[Any, Any, Any], practice_id: str) -> Response[bytes]:
    body = await _body(request, dict)
    row = {"id": f"{practice_id}.r{os.urandom(6).hex()}", "practice_id": practice_id, "name": body["name"]}
    return await _created(request, "practitioners", row)


@post("/v1/practices/{practice_id:str}/visit-types")
async def add_visit_type(request: Request[Any, Any, Any], practice_id: str) -> Response[bytes]:
    body = await _body(request, dict)
    row = {
        "id": f"{practice_id}.v{os.urandom(6).hex()}",
        "practice_id": practice_id,
        "name": body["name"],
        "duration_minutes": int(body["duration_minutes"]),
    }
    return await _created(request, "visit_types", row)


@put("/v1/practitioners/{practitioner_id:str}/schedule")
async def put_schedule(request: Request[Any, Any, Any], practitioner_id: str) -> Response[bytes]:
    schedule = await _body(request, Schedule)
    async with _db(request).begin() as c:
        await store.put_schedule(c, practitioner_id, schedule)
    out = msgspec.to_builtins(schedule)
    return _json({**out, "practitioner_id": practitioner_id, "conflicts": []})


# ------------------------------------------------------------------ booking flow
@get("/v1/practices/{practice_id:str}/availability")
async def availability(
    request: Request[Any, Any, Any], practice_id: str, date: str, visit_type_id: str, days: int = 1
) -> Response[bytes]:
    if not 1 <= days <= 31:
        raise store.Problem(422, "validation_error", "days must be 1 to 31")
    async with _db(request).begin() as c:
        out = await store.search(c, practice_id, visit_type_id, dt.date.fromisoformat(date), days, "admin")
    return _json(out)


@post("/v1/holds")
async def create_hold(request: Request[Any, Any, Any]) -> Response[bytes]:
    data = await _body(request, HoldIn)
    if data.start.tzinfo is None:
        raise store.Problem(422, "validation_error", "start needs an offset")
    async with _db(request).begin() as c:
        out = await store.hold(c, data.practitioner_id, data.visit_type_id, data.start, request.app.state.ttl, "admin")
    return _json(out, 201)


@delete("/v1/holds/{hold_id:str}", status_code=204)
async def release_hold(request: Request[Any, Any, Any], hold_id: str) -> None:
    async with _db(request).begin() as c:
        await store.release(c, hold_id, "admin")


@post("/v1/appointments")
async def book(request: Request[Any, Any, Any]) -> Response[bytes]:
    data = await _body(request, BookIn)
    async with _db(request).begin() as c:
        out = await store.book(c, data.hold_id, msgspec.to_builtins(data.patient), "admin")
    return _json(out, 201)


@post("/v1/appointments/{appointment_id:str}/cancel")
async def cancel(request: Request[Any, Any, Any], appointment_id: str) -> Response[bytes]:
    raw = await request.body()
    reason = (msgspec.json.decode(raw) or {}).get("reason") if raw else None
    async with _db(request).begin() as c:
        out = await store.cancel(c, appointment_id, reason or "", "admin")
    return _json(out)


@get("/readyz")
async def readyz() -> Response[bytes]:
    return _json({"ok": True})


def create_app() -> Litestar:
    url = os.environ["PGONLY_DATABASE_URL"]
    pool = int(os.environ.get("PGONLY_POOL", "20"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.db = create_async_engine(url, pool_size=pool, max_overflow=0, pool_timeout=30)
        app.state.ttl = int(os.environ.get("HOLD_TTL_SECONDS", "300"))
        try:
            yield
        finally:
            await app.state.db.dispose()

    return Litestar(
        route_handlers=[
            create_practice,
            add_practitioner,
            add_visit_type,
            put_schedule,
            availability,
            create_hold,
            release_hold,
            book,
            cancel,
            readyz,
        ],
        lifespan=[lifespan],
        exception_handlers={Exception: _problem},
        debug=False,
        openapi_config=None,
        on_app_init=[quiet_logging],
    )
