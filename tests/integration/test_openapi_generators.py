"""What client generators read in /schema/openapi.json (issue 21 item 4): readable operationIds, instants as
``format: date-time``, the response headers the API sends (X-Request-ID, Retry-After, Location,
Idempotent-Replayed, RateLimit-*, ETag and the 304 of a conditional search), the credentials as security
schemes, and query errors naming their source ``query``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from tests.support.config import settings_for
from tests.support.http import next_weekday, setup_practice

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    doc = create_app(settings_for(None), background=False).openapi_schema.to_schema()
    return json.loads(json.dumps(doc, default=lambda o: o.to_schema() if hasattr(o, "to_schema") else str(o)))  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{m.upper()} {p}": op for p, ops in document["paths"].items() for m, op in ops.items()}


def test_operation_ids_name_the_operation(document: dict[str, Any]) -> None:
    ops = _operations(document)
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert ops["GET /v1/practices/{practice_id}/availability"]["operationId"] == "search_availability"
    assert ops["POST /v1/holds"]["operationId"] == "hold"
    assert ops["POST /v1/appointments"]["operationId"] == "book"
    assert ops["POST /v1/appointments/{appointment_id}/cancel"]["operationId"] == "cancel"
    assert ops["POST /v1/appointments/{appointment_id}/reschedule"]["operationId"] == "reschedule"
    assert all(i.isidentifier() and i == i.lower() and not i.startswith("v1") for i in ids), ids


def test_instants_of_the_answers_are_date_times(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, field in [("SlotOut", "start"), ("SlotOut", "end"), ("HoldOut", "expires_at"),
                        ("AppointmentOut", "start"), ("NotificationOut", "due_at"), ("AuditItem", "at")]:  # fmt: skip
        assert schemas[name]["properties"][field]["format"] == "date-time", (name, field)
    assert {"type": "string", "format": "date-time"} in schemas["NotificationOut"]["properties"]["sent_at"]["oneOf"]
    assert schemas["AvailabilityOut"]["properties"]["date"]["format"] == "date"
    weekly = schemas["WeeklyWindow"]["properties"]["start"]  # a wall-clock HH:MM, not an instant
    assert "format" not in weekly and "pattern" in weekly


def test_response_headers_are_declared(document: dict[str, Any]) -> None:
    ops = _operations(document)
    hold = ops["POST /v1/holds"]["responses"]
    assert {"Location", "Idempotent-Replayed", "X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining",
            "RateLimit-Reset"} <= set(hold["201"]["headers"])  # fmt: skip
    assert {"Retry-After", "RateLimit-Remaining"} <= set(hold["429"]["headers"])
    assert "Retry-After" in hold["503"]["headers"]
    search = ops["GET /v1/practices/{practice_id}/availability"]["responses"]
    assert {"ETag", "Cache-Control", "Age"} <= set(search["200"]["headers"])
    assert "ETag" in search["304"]["headers"] and "content" not in search["304"]
    assert "Location" in ops["POST /v1/practices"]["responses"]["201"]["headers"]
    for label, op in ops.items():
        for status, response in op["responses"].items():
            assert "X-Request-ID" in response.get("headers", {}), (label, status)


def test_security_schemes_are_declared(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["manageToken"] == {**schemes["manageToken"], "type": "apiKey", "in": "header",
                                      "name": "X-Manage-Token"}  # fmt: skip
    ops = _operations(document)
    for label in ("POST /v1/practices", "PUT /v1/practitioners/{practitioner_id}/schedule", "GET /v1/audit",
                  "POST /v1/app-keys"):  # fmt: skip
        assert ops[label]["security"] == [{"bearer": []}], label
    assert "security" not in ops["POST /v1/holds"]  # public: no credential needed
    patient = [label for label, op in ops.items() if {"manageToken": []} in op.get("security", [])]
    assert sorted(patient) == [  # every operation that reads X-Manage-Token says so (or a bearer token: staff)
        "DELETE /v1/waitlist/{entry_id}", "GET /v1/appointments/{appointment_id}",
        "GET /v1/appointments/{appointment_id}/notifications", "GET /v1/series/{series_id}",
        "GET /v1/waitlist/{entry_id}", "POST /v1/appointments/{appointment_id}/cancel",
        "POST /v1/appointments/{appointment_id}/reschedule", "POST /v1/series/{series_id}/cancel",
        "POST /v1/waitlist/{entry_id}/accept", "POST /v1/waitlist/{entry_id}/decline",
    ]  # fmt: skip
    for label in patient:
        assert ops[label]["security"] == [{"manageToken": []}, {"bearer": []}], label
    # what needs a credential says so: only the public's operations and the operator's endpoints state none
    bare = sorted(label for label, op in ops.items() if "security" not in op)
    assert bare == [
        "DELETE /v1/holds/{hold_id}", "GET /healthz", "GET /metrics", "GET /readyz", "GET /v1/holds/{hold_id}",
        "GET /v1/practices/{practice_id}", "GET /v1/practices/{practice_id}/availability",
        "GET /v1/practices/{practice_id}/practitioners", "GET /v1/practices/{practice_id}/visit-types",
        "GET /v1/practitioners/{practitioner_id}", "GET /v1/visit-types/{visit_type_id}",
        "POST /v1/appointments", "POST /v1/holds", "POST /v1/practices/{practice_id}/waitlist",
    ], bare  # fmt: skip


def test_a_query_error_names_its_source_query(make_client: Callable[..., TestClient[Any]]) -> None:
    c = make_client()
    ctx = setup_practice(c)
    r = c.get(f"/v1/practices/{ctx['practice_id']}/availability",
              params={"date": next_weekday(2).isoformat(), "visit_type_id": ctx["visit_types"][30], "days": 99})  # fmt: skip
    assert r.status_code == 422
    assert [e["source"] for e in r.json()["errors"]] == ["query"], r.json()


def test_the_served_document_passes_openapi_spec_validator(make_client: Callable[..., TestClient[Any]]) -> None:
    """/schema/openapi.json as served passes openapi-spec-validator (OpenAPI 3.1 and its JSON Schema dialect, path
    parameters resolved, operationIds unique); the same document broken three ways does not (the validator reads
    what it is given)."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    served = make_client().get("/schema/openapi.json")
    assert served.status_code == 200
    spec = served.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    search = "/v1/practices/{practice_id}/availability"
    unresolved, bad_place, same_id = (json.loads(served.text) for _ in range(3))
    unresolved["paths"][search]["get"]["parameters"].pop(0)  # practice_id, a path parameter, left undeclared
    bad_place["paths"][search]["get"]["parameters"][1]["in"] = "body"  # not a place of OpenAPI 3
    same_id["paths"]["/v1/holds"]["post"]["operationId"] = "book"
    for broken in (unresolved, bad_place, same_id):
        with pytest.raises(OpenAPIValidationError):
            validate(broken)
