"""Helpers shared by the route modules."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask

from api.auth import Principal, principal
from engine.service import BookingEngine, Ctx

JSON = "application/json"
T = TypeVar("T")


def engine(request: Request[Any, Any, Any]) -> BookingEngine:
    return request.app.state.engine  # type: ignore[no-any-return]


async def caller(request: Request[Any, Any, Any], practice_id: str | None = None) -> tuple[Principal, Ctx]:
    """The caller and its audit context; with ``practice_id``, as that practice sees it (a staff key of
    another practice is a public caller there: its searches are audited as public)."""
    p = await principal(request, practice_id)
    return p, Ctx(actor=p.actor, request_id=request.scope.get("state", {}).get("request_id", ""))


async def strict(request: Request[Any, Any, Any], kind: type[T]) -> T:
    """Decode the body again with msgspec's strict rules: Litestar converts leniently ("30" for 30, an epoch
    number for an instant), the contract does not. A mismatch raises msgspec.ValidationError (422)."""
    return msgspec.json.decode(await request.body(), type=kind)


def raw_json(
    body: bytes, status: int, headers: dict[str, str] | None = None, background: BackgroundTask | None = None
) -> Response[bytes]:
    return Response(content=body, status_code=status, media_type=JSON, headers=headers, background=background)


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)
