"""schemathesis hooks for tests/integration/test_openapi_contract.py (loaded through SCHEMATHESIS_HOOKS).

Only for rules that JSON Schema cannot state, so that a case schemathesis calls *valid* is valid for the API too
(its positive_data_acceptance check asserts that such a case is never refused):
- a weekly window ends after it starts, and so does a closure (two fields of one object compared);
- a visit type's ``resource_ids`` name resources of its practice (unknown ones are 422): left out of valid cases;
- an audit ``cursor`` is one this API returned (an opaque value, 422 otherwise);
- an ``Idempotency-Key`` is reused only with the same body (another body is 422 idempotency_key_reused, as
  the IETF Idempotency-Key draft says): a generated key becomes a digest of the body, so a repeated request
  is a replay and two different bodies never share a key.
Schema-invalid (negative) cases are left alone.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from typing import Any

import schemathesis


def _positive(case: Any) -> bool:
    meta = case.meta
    return meta is not None and str(meta.generation.mode) == "positive"


def _minutes(hhmm: Any) -> int | None:
    if not (isinstance(hhmm, str) and len(hhmm) == 5 and hhmm[2] == ":" and (hhmm[:2] + hhmm[3:]).isdigit()):
        return None
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def _instant(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _ordered_window(window: Any) -> Any:
    if not isinstance(window, dict):
        return window
    start, end = _minutes(window.get("start")), _minutes(window.get("end"))
    if start is None or end is None or start < end:
        return window
    if start == end:
        return {**window, "start": "00:00", "end": "24:00"}
    return {**window, "start": window["end"], "end": window["start"]}


def _ordered_closures(closures: list[Any]) -> list[Any]:
    out = []
    for closure in closures:
        start = _instant(closure.get("start")) if isinstance(closure, dict) else None
        end = _instant(closure.get("end")) if isinstance(closure, dict) else None
        if start is None or end is None or start.tzinfo is None or end.tzinfo is None or start < end:
            out.append(closure)
        elif start > end:
            out.append({**closure, "start": closure["end"], "end": closure["start"]})
        # an empty closure (start == end) is left out
    return out


def _issued_shape(cursor: Any) -> bool:
    """Could persistence/audit.py have returned this cursor (base64url of ``<at_ms>:<event id>``)?"""
    try:
        at, sep, _ = base64.urlsafe_b64decode(str(cursor).encode()).decode().partition(":")
        return bool(sep) and at.isdigit() and int(at) < 2**62
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False


@schemathesis.hook.apply_to(method="PUT", path="/v1/practitioners/{practitioner_id}/schedule")
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    body = case.body
    if _positive(case) and isinstance(body, dict):
        if isinstance(body.get("weekly"), list):
            body = {**body, "weekly": [_ordered_window(w) for w in body["weekly"]]}
        if isinstance(body.get("closures"), list):
            body = {**body, "closures": _ordered_closures(body["closures"])}
        case.body = body


@schemathesis.hook("before_call").apply_to(method="PUT", path="/v1/resources/{resource_id}/closures")
def ordered_resource_closures(context: Any, case: Any, kwargs: Any) -> None:
    if _positive(case) and isinstance(case.body, list):
        case.body = _ordered_closures(case.body)


@(
    schemathesis.hook("before_call")
    .apply_to(method="POST", path="/v1/practices/{practice_id}/visit-types")
    .apply_to(method="PATCH", path="/v1/visit-types/{visit_type_id}")
)
def existing_resources_only(context: Any, case: Any, kwargs: Any) -> None:
    if _positive(case) and isinstance(case.body, dict) and case.body.get("resource_ids"):
        case.body = {k: v for k, v in case.body.items() if k != "resource_ids"}


@schemathesis.hook("before_call").apply_to(method="GET", path="/v1/audit")
def issued_cursors_only(context: Any, case: Any, kwargs: Any) -> None:
    if _positive(case) and "cursor" in (case.query or {}) and not _issued_shape(case.query["cursor"]):
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}


@(
    schemathesis.hook("before_call")
    .apply_to(method="POST", path="/v1/holds")
    .apply_to(method="POST", path="/v1/appointments")
)
def one_body_per_idempotency_key(context: Any, case: Any, kwargs: Any) -> None:
    key = "Idempotency-Key"
    if _positive(case) and case.headers and case.headers.get(key):
        # the server fingerprints the body's bytes: the same fields in another order are another body
        digest = hashlib.sha256(json.dumps([case.path, case.body], default=str).encode())
        case.headers[key] = digest.hexdigest()
