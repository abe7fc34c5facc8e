"""One map from errors to RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, cast

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError

from api import storms
from api.schemas import Problem, ProblemCode
from engine import errors
from engine.redis import clients
from engine.redis.asyncio_client import PoolExhaustedError
from engine.redis.errors import ClusterError, RedisConnectionError, RedisTimeoutError, SlotNotCoveredError

log = logging.getLogger("booking.api")
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://booking.example/problems/"

# domain error class -> (HTTP status, title)
DOMAIN_STATUS: dict[type[errors.BookingError], tuple[int, str]] = {
    errors.NotFoundError: (404, "Not found"),
    errors.UnknownTimezoneError: (422, "Unknown time zone"),
    errors.InvalidRequestError: (422, "Invalid request"),
    errors.SlotUnavailableError: (409, "Slot unavailable"),
    errors.HoldExpiredError: (410, "Hold expired"),
    errors.HoldUsedError: (409, "Hold already used"),
    errors.AppointmentCancelledError: (409, "Appointment cancelled"),
    errors.AppointmentArchivedError: (409, "Appointment archived"),
    errors.IdempotencyKeyReusedError: (422, "Idempotency key reused"),
    errors.StaleScheduleError: (409, "Schedule changed concurrently"),
    errors.OverlapDetectedError: (409, "Overlap detected"),
    errors.ReplicaUnconfirmedError: (503, "Service unavailable"),
    errors.NoOfferError: (409, "No offer"),
    errors.OfferExpiredError: (410, "Offer expired"),
    errors.OfferKitError: (409, "Changed concurrently"),
    errors.OfferHoldError: (403, "Forbidden"),
    errors.WaitlistFullError: (409, "Waitlist full"),
    errors.WaitlistClientFullError: (429, "Too many waitlist entries"),
}


class AuthError(Exception):
    """401/403 with a code; raised by api.auth."""

    def __init__(self, status: int, code: ProblemCode, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def problem(
    status: int,
    code: ProblemCode,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errs: list[dict[str, Any]] | None = None,
    instance: str | None = None,
    unavailable: list[str] | None = None,
) -> Response[Any]:
    body = Problem(
        type=TYPE_BASE + code,
        title=title,
        status=status,
        detail=detail,
        code=code,
        instance=instance,
        errors=errs,
        unavailable=unavailable,
    )
    return Response(content=msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain(request: Request[Any, Any, Any], exc: errors.BookingError) -> Response[Any]:
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            status, title = DOMAIN_STATUS[cls]
            break
    else:
        status, title = 409, "Conflict"
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 429:
        headers = {"Retry-After": str(getattr(exc, "retry_after_s", 60))}
    unavailable = exc.unavailable if isinstance(exc, errors.SeriesUnavailableError) else None
    code = cast(ProblemCode, exc.code)  # every engine code is one (tests/unit/test_problem_codes.py)
    return problem(status, code, title, exc.detail, instance=request.url.path, headers=headers, unavailable=unavailable)


def _source(source: Any) -> str:
    """Where the bad value was: ``query``, ``path``, ``header``, ``cookie`` or ``body`` (Litestar hands a
    ``ParamType`` enum, whose str() was "ParamType.QUERY")."""
    return str(getattr(source, "value", source))


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else None
    errs = [
        {"message": str(e.get("message")), "key": str(e.get("key")), "source": _source(e.get("source"))}
        for e in extra or []
        if isinstance(e, dict)
    ]
    detail = "; ".join(f"{e['key']}: {e['message']}" for e in errs) or str(exc.detail)
    return problem(422, "validation_error", "Invalid request", detail, errs=errs or None, instance=request.url.path)


# the codes of Litestar's own HTTP errors by status (any other: http_error below 500, else internal_error)
HTTP_CODES: dict[int, ProblemCode] = {
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return _validation(request, exc)
    if isinstance(exc, NotFoundException):
        return problem(404, "not_found", "Not found", str(exc.detail), instance=request.url.path)
    if isinstance(exc, NotAuthorizedException):
        return problem(401, "unauthorized", "Unauthorized", str(exc.detail))
    if isinstance(exc, PermissionDeniedException):
        return problem(403, "forbidden", "Forbidden", str(exc.detail))
    status = exc.status_code
    if isinstance(exc, ClientException) and status == 400:
        return problem(400, "malformed_request", "Malformed request", str(exc.detail), instance=request.url.path)
    code: ProblemCode = HTTP_CODES.get(status, "http_error" if status < 500 else "internal_error")
    return problem(status, code, "Request failed", str(exc.detail), headers=exc.headers)


def _auth(request: Request[Any, Any, Any], exc: AuthError) -> Response[Any]:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem(
        exc.status, exc.code, "Unauthorized" if exc.status == 401 else "Forbidden", exc.detail, headers=headers
    )


def _limited(request: Request[Any, Any, Any], exc: errors.LimitExceededError) -> Response[Any]:
    headers = {"Retry-After": str(exc.retry_after_s)}
    return problem(429, "rate_limited", "Too many requests", exc.detail, headers=headers)


def _redis_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    storms.failed(request, "redis", f"redis unavailable ({type(exc).__name__}: {exc})")
    reason = "is unreachable" if isinstance(exc, RedisConnectionError | RedisTimeoutError) else "cannot serve right now"
    return problem(
        503,
        "dependency_unavailable",
        "Service unavailable",
        f"the availability store {reason}; nothing was changed, retry shortly",
        headers={"Retry-After": "1"},
    )


def _pool_exhausted(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request.app.state.metrics.redis_pool_exhausted.inc()
    storms.failed(request, "redis", f"redis pool exhausted: {exc}")
    return problem(
        503,
        "dependency_unavailable",
        "Service unavailable",
        "the server is overloaded: no connection to the availability store freed up in time; nothing was "
        "changed, retry shortly",
        headers={"Retry-After": "1"},
    )


def _bad_encoding(request: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    return problem(
        400,
        "malformed_request",
        "Malformed request",
        "the request body is not valid UTF-8 JSON",
        instance=request.url.path,
    )


def _strict_validation(request: Request[Any, Any, Any], exc: msgspec.ValidationError) -> Response[Any]:
    return problem(422, "validation_error", "Invalid request", str(exc), instance=request.url.path)


def _database_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    storms.failed(request, "database", f"database unavailable ({type(exc).__name__})")
    return problem(
        503,
        "dependency_unavailable",
        "Service unavailable",
        "the durable store is unreachable (bookings still work; this read needs it); retry shortly",
        headers={"Retry-After": "5"},
    )


def _crash(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "Internal error", "an unexpected error occurred; it was logged")


# What each problem status means, for the OpenAPI document (api/openapi.py picks them per operation).
PROBLEM_STATUS_TEXT = {
    400: "Malformed request: the body is not JSON (malformed_request)",
    401: "No, unknown or revoked credentials (unauthorized)",
    403: "Known credentials that may not do this (forbidden)",
    404: "Not found, or another practice's resource (not_found)",
    409: (
        "Conflict: slot_unavailable, hold_used, appointment_cancelled, no_offer, appointment_archived (it ended "
        "more than APPOINTMENT_RETENTION_DAYS ago: read-only), waitlist_full (the practice's live entries at "
        "WAITLIST_MAX_PER_PRACTICE), a concurrent schedule change"
    ),
    410: "The hold expired or was released (hold_expired); a waitlist offer lapsed (offer_expired)",
    413: "Request body too large (payload_too_large)",
    422: (
        "Invalid request: validation_error, unknown_timezone, idempotency_key_reused, webhook_target_refused (a "
        "webhook URL on a loopback or private address)"
    ),
    429: (
        "Abuse limit reached; see Retry-After (rate_limited; too_many_entries: the client's live waitlist entries "
        "at WAITLIST_MAX_PER_CLIENT)"
    ),
    503: "A dependency is unavailable; nothing changed, see Retry-After (dependency_unavailable, not_ready)",
}


def problem_responses(codes: Iterable[int]) -> dict[int, Any]:
    """The problem answers ``codes`` as OpenAPI responses (application/problem+json, the Problem schema)."""
    from litestar.openapi.datastructures import ResponseSpec

    return {
        code: ResponseSpec(
            data_container=Problem,
            description=PROBLEM_STATUS_TEXT[code],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for code in sorted(set(codes))
    }


EXCEPTION_HANDLERS: dict[Any, Any] = {
    errors.BookingError: _domain,
    HTTPException: _http,
    AuthError: _auth,
    errors.LimitExceededError: _limited,
    PoolExhaustedError: _pool_exhausted,
    RedisConnectionError: _redis_down,
    RedisTimeoutError: _redis_down,
    ClusterError: _redis_down,  # Redis Cluster: a slot redirected or unsettled for too long ("TTL exhausted")
    SlotNotCoveredError: _redis_down,  # Redis Cluster: no node serves the slot right now
    # and every other reply that says Redis cannot serve right now: BUSY, OOM, READONLY, MISCONF, NOREPLICAS
    **{cls: _redis_down for cls in clients.UNREACHABLE},
    SQLAlchemyOperationalError: _database_down,
    UnicodeDecodeError: _bad_encoding,
    msgspec.ValidationError: _strict_validation,
    Exception: _crash,
}
