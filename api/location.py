"""``Location`` on every 201 (API.md "Operations"): the URL of the resource the request created, read from the
answer's ``id`` (``series_id`` for a booked series). One middleware for every route, so that a route added later
gets it too: a 201 it does not know is located under the request's own path (``POST /collection`` ->
``/collection/{id}``)."""

from __future__ import annotations

import re

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

# request path -> where what it creates lives (the first match wins)
_PLACES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/v1/practices/[^/]+/practitioners$"), "/v1/practitioners/{id}"),
    (re.compile(r"^/v1/practices/[^/]+/visit-types$"), "/v1/visit-types/{id}"),
    (re.compile(r"^/v1/practices/[^/]+/resources$"), "/v1/resources/{id}"),
    (re.compile(r"^/v1/practices/[^/]+/waitlist$"), "/v1/waitlist/{id}"),
    (re.compile(r"^/v1/waitlist/[^/]+/accept$"), "/v1/appointments/{id}"),
]


class _Ids(msgspec.Struct):
    id: str | None = None
    series_id: str | None = None


_decode = msgspec.json.Decoder(_Ids).decode


def location(path: str, body: bytes) -> str | None:
    try:
        ids = _decode(body)
    except msgspec.DecodeError:
        return None
    if ids.id is None and ids.series_id is not None:
        return f"/v1/series/{ids.series_id}"
    if ids.id is None:
        return None
    for pattern, place in _PLACES:
        if pattern.match(path):
            return place.format(id=ids.id)
    return f"{path.rstrip('/')}/{ids.id}"


def location_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") != "POST":
            await app(scope, receive, send)
            return
        held: list[HTTPResponseStartEvent] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 201:
                held.append(message)  # until the body says what was created
                return
            if held and message["type"] == "http.response.body":
                start = held.pop()
                named = any(k.lower() == b"location" for k, _ in start.get("headers", []))
                if not named and not message.get("more_body", False):  # a route may name it itself
                    where = location(scope["path"], message.get("body", b""))
                    if where is not None:
                        start["headers"] = [*start.get("headers", []), (b"location", where.encode())]
                await send(start)
            await send(message)

        await app(scope, receive, send_wrapper)

    return middleware
