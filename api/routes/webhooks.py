"""Webhooks (API.md "Webhooks", docs/webhooks.md): the admin or a practice's staff register endpoints for the
event types they want; the notification worker delivers (persistence/webhooks)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth import require_staff
from api.routes.common import caller, engine, instant, strict
from engine import errors, timeutil
from persistence.webhooks import signing, store, targets

EventType = Literal[
    "appointment.booked",
    "appointment.cancelled",
    "appointment.rescheduled",
    "waitlist.offered",
    "waitlist.accepted",
    "waitlist.lapsed",
]
BASE = "/v1/practices/{practice_id:str}/webhooks"
RESOLVE_TIMEOUT_S = 5.0


class WebhookTargetRefusedError(errors.InvalidRequestError):
    """422: the URL's host is loopback, private, link-local or otherwise not public (or does not resolve)."""

    code = "webhook_target_refused"


# http or https, no spaces or control characters (what the schema can state; the host is checked in code)
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f]+$"


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=targets.MAX_URL, pattern=URL_PATTERN)]
    events: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=20)]
    include_patient: bool = False


class WebhookCreated(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    include_patient: bool
    secret: str  # shown once
    status: str


class WebhookOut(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    include_patient: bool
    status: str  # active or disabled
    last_error: str | None  # why the last attempt failed (why it was disabled, when it is)
    disabled_at: str | None
    created_at: str


class WebhookList(msgspec.Struct):
    items: list[WebhookOut]


class AttemptOut(msgspec.Struct):
    event_id: str
    type: str
    attempt: int
    status_code: int | None
    latency_ms: int
    error: str | None
    at: str


class AttemptList(msgspec.Struct):
    items: list[AttemptOut]


class ReplayOut(msgspec.Struct):
    id: str
    since: str
    replayed: int  # events to be sent again
    status: str


def _at(ms: int | None, tz: str) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, timeutil.zone(tz)).isoformat(timespec="milliseconds")


def _out(row: dict[str, Any], tz: str) -> WebhookOut:
    return WebhookOut(
        id=row["id"],
        url=row["url"],
        events=msgspec.json.decode(row["events"]),
        include_patient=bool(row["include_patient"]),
        status=row["status"],
        last_error=row["last_error"],
        disabled_at=_at(row["disabled_at_ms"], tz),
        created_at=_at(row["created_at_ms"], tz) or "",
    )


async def _staff_of(request: Request[Any, Any, Any], practice_id: str) -> str:
    """The admin or the practice's staff (another practice's staff: 404); returns the practice's zone."""
    p, _ = await caller(request)  # a staff key of another practice is staff there too: 404, not 401
    require_staff(p, practice_id)
    return (await engine(request).get_practice(practice_id)).timezone


async def _endpoint(request: Request[Any, Any, Any], practice_id: str, webhook_id: str) -> dict[str, Any]:
    row = await asyncio.to_thread(store.one, request.app.state.db, practice_id, webhook_id)
    if row is None:
        raise errors.NotFoundError("webhook", webhook_id)
    return row


async def _check_target(request: Request[Any, Any, Any], url: str) -> None:
    allow = request.app.state.settings.webhook_allow_private
    try:
        await asyncio.wait_for(asyncio.to_thread(targets.check, url, allow), RESOLVE_TIMEOUT_S)
    except targets.TargetError as exc:
        if exc.refused:
            raise WebhookTargetRefusedError(exc.detail) from None
        raise errors.InvalidRequestError(exc.detail) from None
    except TimeoutError:
        raise WebhookTargetRefusedError(f"the url's host did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None


@post(BASE, status_code=201, tags=["webhooks"], summary="Register a webhook endpoint (the secret is shown once)")
async def create_webhook(
    request: Request[Any, Any, Any], practice_id: FromPath[str], data: JSONBody[WebhookIn]
) -> Response[WebhookCreated]:
    data = await strict(request, WebhookIn)
    tz = await _staff_of(request, practice_id)
    await _check_target(request, data.url)
    wanted = list(dict.fromkeys(data.events))  # each type once, in the order given
    row = await asyncio.to_thread(
        store.create, request.app.state.db, practice_id, data.url, wanted, data.include_patient, signing.new_secret()
    )
    out = _out(row, tz)
    body = WebhookCreated(
        id=out.id, url=out.url, events=out.events, include_patient=out.include_patient, secret=row["secret"],
        status=out.status,
    )  # fmt: skip
    return Response(body, status_code=201, headers={"Location": f"/v1/practices/{practice_id}/webhooks/{out.id}"})


@get(BASE, tags=["webhooks"], summary="The practice's webhook endpoints (never their secrets)")
async def list_webhooks(request: Request[Any, Any, Any], practice_id: FromPath[str]) -> WebhookList:
    tz = await _staff_of(request, practice_id)
    rows = await asyncio.to_thread(store.listed, request.app.state.db, practice_id)
    return WebhookList(items=[_out(r, tz) for r in rows])


@get(BASE + "/{webhook_id:str}", tags=["webhooks"], summary="One webhook endpoint (never its secret)")
async def get_webhook(
    request: Request[Any, Any, Any], practice_id: FromPath[str], webhook_id: FromPath[str]
) -> WebhookOut:
    tz = await _staff_of(request, practice_id)
    return _out(await _endpoint(request, practice_id, webhook_id), tz)


@delete(BASE + "/{webhook_id:str}", status_code=204, tags=["webhooks"], summary="Remove a webhook endpoint")
async def delete_webhook(
    request: Request[Any, Any, Any], practice_id: FromPath[str], webhook_id: FromPath[str]
) -> None:
    await _staff_of(request, practice_id)
    if not await asyncio.to_thread(store.remove, request.app.state.db, practice_id, webhook_id):
        raise errors.NotFoundError("webhook", webhook_id)


@get(
    BASE + "/{webhook_id:str}/deliveries",
    tags=["webhooks"],
    summary="Every delivery attempt to the endpoint, newest first",
)
async def list_deliveries(
    request: Request[Any, Any, Any],
    practice_id: FromPath[str],
    webhook_id: FromPath[str],
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> AttemptList:
    tz = await _staff_of(request, practice_id)
    await _endpoint(request, practice_id, webhook_id)
    rows = await asyncio.to_thread(store.attempts, request.app.state.db, webhook_id, limit)
    return AttemptList(
        items=[
            AttemptOut(
                event_id=r["event_id"],
                type=r["type"],
                attempt=r["attempt"],
                status_code=r["status_code"],
                latency_ms=r["latency_ms"],
                error=r["error"],
                at=_at(r["at_ms"], tz) or "",
            )
            for r in rows
        ]
    )


@post(
    BASE + "/{webhook_id:str}/replay",
    status_code=202,
    tags=["webhooks"],
    summary="Send again every event after an instant (from the durable record); re-enables a disabled endpoint",
)
async def replay_webhook(
    request: Request[Any, Any, Any],
    practice_id: FromPath[str],
    webhook_id: FromPath[str],
    since: Annotated[
        str,
        QueryParameter(
            max_length=64,
            description="An RFC 3339 instant with an explicit offset: events after it are sent again",
            schema_extra={"format": "date-time"},
        ),
    ],
) -> ReplayOut:
    await _staff_of(request, practice_id)
    since_at = instant(since, "since")
    row = await _endpoint(request, practice_id, webhook_id)
    n = await asyncio.to_thread(store.replay, request.app.state.db, row, int(since_at.timestamp() * 1000))
    return ReplayOut(id=webhook_id, since=since_at.isoformat(), replayed=n, status="active")


ROUTES = [create_webhook, list_webhooks, get_webhook, delete_webhook, list_deliveries, replay_webhook]
