"""The floor: bare Litestar endpoints on the same paths as the engine, each doing one Redis round trip.

Every handler makes one `GET` of a canned answer and returns it as is: no validation, no script, no
formatting. Served the same way as the engine (uvicorn, same workers), it is the most this HTTP stack can do
per request with Redis in the loop. Run: `uvicorn --factory benchmarks.floor_app:create_app` with REDIS_URL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, delete, get, post

from api.hooks import quiet_logging
from engine.redis import clients

PREFIX = "bench:floor:"
_slot = {"practitioner_id": "floor.r0", "start": "2030-01-07T09:00:00+01:00", "end": "2030-01-07T09:30:00+01:00"}
CANNED: dict[str, Any] = {
    "ping": {"ok": True},
    "search": {"practice_id": "floor", "timezone": "Europe/Paris", "visit_type_id": "floor.v0", "slots": [_slot] * 8},
    "hold": {
        "id": "floor-hold",
        "practitioner_id": "floor.r0",
        "visit_type_id": "floor.v0",
        "start": _slot["start"],
        "end": _slot["end"],
        "expires_at": "2030-01-07T09:05:00.000+01:00",
    },
    "book": {
        "id": "floor-appt",
        "status": "booked",
        "version": 1,
        "practitioner_id": "floor.r0",
        "start": _slot["start"],
        "end": _slot["end"],
    },
    "cancel": {"id": "floor-appt", "status": "cancelled", "version": 2},
}


async def _canned(request: Request[Any, Any, Any], name: str, status: int = 200) -> Response[bytes]:
    body = await request.app.state.redis.get(PREFIX + name)
    return Response(content=body or b"{}", status_code=status, media_type="application/json")


@get("/ping")
async def ping(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _canned(request, "ping")


@get("/v1/practices/{practice_id:str}/availability")
async def availability(request: Request[Any, Any, Any], practice_id: str) -> Response[bytes]:
    return await _canned(request, "search")


@post("/v1/holds")
async def hold(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _canned(request, "hold", 201)


@delete("/v1/holds/{hold_id:str}", status_code=204)
async def release(request: Request[Any, Any, Any], hold_id: str) -> None:
    await request.app.state.redis.get(PREFIX + "ping")


@post("/v1/appointments")
async def book(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _canned(request, "book", 201)


@post("/v1/appointments/{appointment_id:str}/cancel")
async def cancel(request: Request[Any, Any, Any], appointment_id: str) -> Response[bytes]:
    return await _canned(request, "cancel")


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _canned(request, "ping")


def create_app() -> Litestar:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.redis = clients.redis_for(
            url,
            cluster=os.environ.get("REDIS_CLUSTER", "0") == "1",
            asynchronous=True,
            max_connections=512,
            socket_connect_timeout=1.0,
        )
        for name, body in CANNED.items():
            await app.state.redis.set(PREFIX + name, msgspec.json.encode(body))
        try:
            yield
        finally:
            await app.state.redis.aclose()

    return Litestar(
        route_handlers=[ping, availability, hold, release, book, cancel, readyz],
        lifespan=[lifespan],
        debug=False,
        openapi_config=None,
        on_app_init=[quiet_logging],
    )
