"""Helpers shared by the route modules."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.params import HeaderParameter

from api.auth import Principal, client_id, principal
from engine import access, errors
from engine.idempotency import IdempotencyKey, derive, scope_of
from engine.model import AwareDatetime
from engine.redis import clients
from engine.service import BookingEngine, Ctx

log = logging.getLogger("booking.api")
JSON = "application/json"
T = TypeVar("T")
LIMITED = ("public", "open", "app")  # public clients (the open one may also set up) and apps' end users
IdemKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False, max_length=200)]


async def idempotency(request: Request[Any, Any, Any], key: str | None) -> IdempotencyKey | None:
    """The derived Idempotency-Key of a request that sent one: its fingerprint covers the method, the route and
    every path parameter as well as the body (a key reused for another route or resource is 422
    ``idempotency_key_reused``). Every route that takes the header derives it here."""
    if not key:
        return None
    scope = scope_of(request.method, request.scope.get("path_template", request.url.path), request.path_params)
    return derive(key, await request.body(), scope)


def engine(request: Request[Any, Any, Any]) -> BookingEngine:
    return request.app.state.engine  # type: ignore[no-any-return]


async def caller(request: Request[Any, Any, Any], practice_id: str | None = None) -> tuple[Principal, Ctx]:
    """The caller and its audit context; with ``practice_id``, as that practice sees it (a staff key of
    another practice is a public caller there: its searches are audited as public)."""
    p = await principal(request, practice_id)
    rid = request.scope.get("state", {}).get("request_id", "")
    return p, Ctx(actor=p.actor, request_id=rid, privileged=p.kind in ("admin", "staff"))


async def strict(request: Request[Any, Any, Any], kind: type[T]) -> T:
    """Decode the body again with msgspec's strict rules: Litestar converts leniently ("30" for 30, an epoch
    number for an instant), the contract does not. A mismatch raises msgspec.ValidationError (422).

    One exception: JSON has a single number type, and JSON Schema (so the OpenAPI document) counts ``30.0`` as
    the integer 30; strict msgspec would refuse it, so a body whose only fault may be such numbers is decoded
    again with them as integers."""
    body = await request.body()
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as refused:
        value, changed = _integral_floats(msgspec.json.decode(body))
        if not changed:
            raise
        try:
            return msgspec.convert(value, type=kind)
        except msgspec.ValidationError:
            raise refused from None


def _integral_floats(value: Any) -> tuple[Any, bool]:
    """``value`` with every float that is a whole number replaced by that int; and whether any was."""
    if isinstance(value, float) and value.is_integer():
        return int(value), True
    if isinstance(value, list):
        pairs = [_integral_floats(v) for v in value]
        return [v for v, _ in pairs], any(c for _, c in pairs)
    if isinstance(value, dict):
        items = {k: _integral_floats(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(c for _, c in items.values())
    return value, False


def raw_json(
    body: bytes, status: int, headers: dict[str, str] | None = None, background: BackgroundTask | None = None
) -> Response[bytes]:
    return Response(content=body, status_code=status, media_type=JSON, headers=headers, background=background)


def encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _limits(request: Request[Any, Any, Any]) -> access.Limits:
    s = request.app.state.settings
    return access.Limits(s.limit_live_holds, s.limit_holds_per_minute, s.limit_bookings_per_minute)


def _local_limits(request: Request[Any, Any, Any]) -> access.LocalLimits:
    return request.app.state.local_limits  # type: ignore[no-any-return]


def _key_limits(request: Request[Any, Any, Any]) -> access.Limits:
    s = request.app.state.settings
    return access.Limits(0, s.limit_app_key_holds_per_minute, s.limit_app_key_bookings_per_minute)


def limited_client(request: Request[Any, Any, Any], p: Principal) -> str:
    """Whose abuse limits a request counts against: an app's end user (key and hashed X-End-User), or the
    public client's address."""
    if p.kind == "app":
        return f"app:{p.app_key_id}:{p.end_user}"
    return client_id(request)


async def limited(
    request: Request[Any, Any, Any], p: Principal, action: str, hold_id: str | None = None, forget: str = ""
) -> access.Quota | None:
    """Public callers' abuse limits (API.md: 429 with Retry-After); admin and staff callers are not limited. An
    app's requests count per (key, end user) with the public limits and per key with the key's own; the answer
    carries the IETF RateLimit fields of the tighter one (api/metrics.py adds them).

    ``forget``: the hold a booking books, taken off the client's live holds by the same call (no round trip of
    its own; ``booked`` puts it back when the booking fails). Returns the client's own quota (None: not limited).

    When Redis cannot count (the shard of the client's counters has no primary, or Redis is down), this process
    counts them itself (``access.LocalLimits``, docs/operations.md): the request goes on to the practice's shard,
    which answers for itself."""
    if p.kind not in LIMITED:
        return None
    counted = request.app.state.metrics.domain
    eng, local, state = engine(request), _local_limits(request), request.scope.setdefault("state", {})
    scopes = [(_limits(request), limited_client(request, p), hold_id, forget)]
    if p.kind == "app":  # the key's own budget has no live-hold cap
        scopes.append((_key_limits(request), f"app:{p.app_key_id}", None, ""))
    quotas = []
    for limits, client, member, gone in scopes:
        try:
            quotas.append(await access.check_limit(eng, limits, client, action, member, local, gone))
        except errors.LimitExceededError as exc:
            per_minute = limits.holds_per_minute if action == "hold" else limits.bookings_per_minute
            state["ratelimit"] = (exc.limit or per_minute, 0, exc.retry_after_s)  # the limit it went over
            counted.labels(f"limit_{action}", "refused").inc()
            raise
    tightest = min(quotas, key=lambda q: (q.remaining, -q.reset_s))
    state["ratelimit"] = (tightest.limit, tightest.remaining, tightest.reset_s)
    if not all(q.in_redis for q in quotas):
        log.warning("abuse limits of a client counted in this process: Redis did not answer")
        counted.labels(f"limit_{action}", "local").inc()
    return quotas[0]


async def forget(request: Request[Any, Any, Any], p: Principal, hold_id: str) -> None:
    """A hold that was booked, released or refused no longer counts against its public client's cap. A failure
    to say so is logged and counted, never the answer's: the hold then counts until its expiry."""
    if p.kind not in LIMITED:
        return
    client = limited_client(request, p)
    _local_limits(request).forget(client, hold_id)
    try:
        await access.forget_hold(engine(request), client, hold_id)
    except clients.UNREACHABLE as exc:
        log.warning("a hold's place in its client's cap was not freed: %s", exc or type(exc).__name__)
        request.app.state.metrics.domain.labels("limit_forget", "failed").inc()


async def booked(
    request: Request[Any, Any, Any], p: Principal, hold_id: str, quota: access.Quota | None, ok: bool
) -> None:
    """After a booking of ``hold_id`` whose limit call was asked to forget it (``limited(..., forget=hold_id)``):
    booked (``ok``), it no longer counts against the client's cap, which Redis already knows unless this process
    counted the request itself (then as ``forget``); failed, a hold the call took off counts again until its
    expiry (a failure to say so is logged: the client then has room for one more hold meanwhile)."""
    if p.kind not in LIMITED or quota is None:
        return
    if ok:
        if quota.in_redis:
            _local_limits(request).forget(limited_client(request, p), hold_id)
        else:
            await forget(request, p, hold_id)
        return
    if not quota.forgot_ms:
        return
    try:
        await access.remember_hold(engine(request), limited_client(request, p), hold_id, quota.forgot_ms)
    except clients.UNREACHABLE as exc:
        log.warning("a hold's place in its client's cap was not taken again: %s", exc or type(exc).__name__)


def instant(text: str, name: str) -> dt.datetime:
    """A query parameter that is an instant: RFC 3339 with an explicit offset, as every instant of a request
    (Litestar alone would also take a naive time or an epoch number); else a 422 naming ``name``."""
    try:
        return msgspec.convert(text, AwareDatetime)
    except msgspec.ValidationError:
        raise errors.InvalidRequestError(f"{name} must be an RFC 3339 instant with an explicit offset") from None
