"""GET /v1/audit: the durable audit trail (write-behind: an event appears within the persister's lag)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get
from litestar.params import QueryParameter

from api.auth import require_staff
from api.problems import AuthError
from api.routes.common import caller, instant
from engine import errors, ids, timeutil
from engine.events import AUDITED
from persistence import audit

Action = Literal[AUDITED]  # type: ignore[valid-type]  # the audited actions (engine.events)


class AuditItem(msgspec.Struct):
    id: str
    at: str
    action: str
    actor: str
    practice_id: str
    practitioner_id: str | None
    hold_id: str | None
    appointment_id: str | None
    request_id: str | None
    detail: dict[str, Any]
    chain_index: int
    hash: str


class AuditPage(msgspec.Struct):
    items: list[AuditItem]
    next: str | None


@get("/v1/audit", tags=["audit"], summary="The audit trail, oldest first, filtered")
async def list_audit(
    request: Request[Any, Any, Any],
    practice_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    appointment_id: Annotated[str | None, QueryParameter(max_length=200)] = None,
    hold_id: Annotated[str | None, QueryParameter(max_length=200)] = None,
    action: Annotated[Action | None, QueryParameter()] = None,
    since: Annotated[
        str | None,
        QueryParameter(
            max_length=64,
            description="An RFC 3339 instant with an explicit offset",
            schema_extra={"format": "date-time"},
        ),
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> AuditPage:
    p, _ = await caller(request)
    # the practice is named explicitly or implied by the appointment or hold asked about
    implied = (
        practice_id
        or (ids.practice_of(appointment_id, "a") if appointment_id else None)
        or (ids.practice_of(hold_id, "h") if hold_id else None)
    )
    if implied is None and p.kind == "staff":
        implied = p.practice_id  # staff see their own practice's trail
    if implied is not None:
        require_staff(p, implied)
    elif not p.is_admin:  # public and the embedded default's open caller alike: the trail is patients' data
        raise AuthError(401, "unauthorized", "the audit trail needs a bearer token (admin or practice staff)")
    since_at = instant(since, "since") if since is not None else None
    try:
        rows, nxt = await asyncio.to_thread(
            audit.query,
            request.app.state.db,
            practice_id=implied,
            appointment_id=appointment_id,
            hold_id=hold_id,
            action=action,
            since_ms=int(since_at.timestamp() * 1000) if since_at else None,
            limit=limit,
            cursor=cursor,
        )
    except audit.InvalidCursorError:
        raise errors.InvalidRequestError("cursor is not one this API returned") from None
    tz_cache: dict[str, str] = {}
    items = []
    for r in rows:
        tz = tz_cache.get(r["practice_id"])
        if tz is None:
            try:
                tz = (await request.app.state.engine.get_practice(r["practice_id"])).timezone
            except errors.NotFoundError:
                tz = "UTC"
            tz_cache[r["practice_id"]] = tz
        items.append(
            AuditItem(
                id=r["id"],
                at=dt.datetime.fromtimestamp(r["at_ms"] / 1000, timeutil.zone(tz)).isoformat(timespec="milliseconds"),
                action=r["action"],
                actor=r["actor"],
                practice_id=r["practice_id"],
                practitioner_id=r["practitioner_id"],
                hold_id=r["hold_id"],
                appointment_id=r["appointment_id"],
                request_id=r["request_id"],
                detail=msgspec.json.decode(r["detail"]) if r["detail"] not in ("", "[]") else {},
                chain_index=r["chain_index"],
                hash=r["hash"],
            )
        )
    return AuditPage(items=items, next=nxt)


ROUTES = [list_audit]
