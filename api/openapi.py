"""What the OpenAPI document (/schema/openapi.json) states beyond the handlers' signatures.

- Every request body that refuses unknown fields says so (``additionalProperties: false``).
- Each operation declares the problems it can answer (api/problems.py), and only those.
- Links tie the operations together the way a client walks them: practice -> practitioner -> schedule,
  visit type (or the visit type list) -> availability -> hold -> appointment -> read / cancel / notifications,
  hold -> reschedule onto it, audit -> next page. Clients read them as documentation; schemathesis' stateful
  phase follows them (tests/integration/test_openapi_contract.py).
- ``OPTIONS`` answers an ``Allow`` header with every method of its path (Litestar's own OPTIONS handler lists
  only the methods of the first handler registered for a path).

Operations are named by their handler function, so this table survives the handlers moving between modules;
``document`` refuses a handler it does not know, and a name here without a handler.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from litestar import Response, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    Components,
    Link,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.status_codes import HTTP_204_NO_CONTENT
from litestar.typing import FieldDefinition

from api.litestar_private import StructSchemaPlugin
from api.problems import PROBLEM_JSON, problem_responses

# Problems every /v1 operation can answer: an unknown bearer token (401) and an unreachable store (503).
V1 = (401, 503)
BODY = (400, 413, 422)  # a body that is not JSON, too large, or not valid by its schema
QUERY = (422,)  # a query parameter out of its bounds


@dataclass(frozen=True)
class Doc:
    """What the document says about one operation beyond its signature."""

    problems: tuple[int, ...]
    links: Mapping[int, Mapping[str, Link]] = field(default_factory=dict)
    optional_body: bool = False  # the body may be omitted (Litestar always marks a body required)


def op(method: str, path: str) -> str:
    """An operationRef (JSON pointer into this document) for ``method path``."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()


def link(method: str, path: str, description: str, body: Any = None, **parameters: str) -> Link:
    """``parameters`` are ``<in>_<name>=<expression>``, e.g. ``path_practice_id="$response.body#/id"``."""
    return Link(
        operation_ref=op(method, path),
        description=description,
        parameters={k.replace("_", ".", 1): v for k, v in parameters.items()} or None,
        request_body=body,
    )


PRACTICE = "/v1/practices/{practice_id}"
PRACTITIONER = "/v1/practitioners/{practitioner_id}"
HOLD = "/v1/holds/{hold_id}"
APPOINTMENT = "/v1/appointments/{appointment_id}"
ENTRY = "/v1/waitlist/{entry_id}"
ID = "$response.body#/id"

_APPOINTMENT_LINKS = {
    "read": link("GET", APPOINTMENT, "Read the appointment", path_appointment_id=ID),
    "cancel": link("POST", APPOINTMENT + "/cancel", "Cancel it", path_appointment_id=ID),
    "notifications": link("GET", APPOINTMENT + "/notifications", "Its notifications", path_appointment_id=ID),
}

DOCS: dict[str, Doc] = {
    "create_practice": Doc(
        (*V1, *BODY, 403),
        {
            201: {
                "read": link("GET", PRACTICE, "Read the practice", path_practice_id=ID),
                "add_practitioner": link(
                    "POST", PRACTICE + "/practitioners", "Add a practitioner", path_practice_id=ID
                ),
                "add_visit_type": link("POST", PRACTICE + "/visit-types", "Add a visit type", path_practice_id=ID),
                "practitioners": link("GET", PRACTICE + "/practitioners", "List practitioners", path_practice_id=ID),
                "visit_types": link("GET", PRACTICE + "/visit-types", "List visit types", path_practice_id=ID),
                "create_api_key": link("POST", PRACTICE + "/api-keys", "Create a staff key", path_practice_id=ID),
                "audit": link("GET", "/v1/audit", "The practice's audit trail", query_practice_id=ID),
            }
        },
    ),
    "get_practice": Doc((*V1, 404)),
    "add_practitioner": Doc(
        (*V1, *BODY, 404),
        {
            201: {
                "put_schedule": link(
                    "PUT", PRACTITIONER + "/schedule", "Give the practitioner a schedule", path_practitioner_id=ID
                ),
            }
        },
    ),
    "list_practitioners": Doc((*V1, 404)),
    "get_practitioner": Doc((*V1, 404)),
    "get_visit_type": Doc((*V1, 404)),
    "add_visit_type": Doc(
        (*V1, *BODY, 404),
        {
            201: {
                "availability": link(
                    "GET",
                    PRACTICE + "/availability",
                    "Search free slots of this visit type",
                    path_practice_id="$response.body#/practice_id",
                    query_visit_type_id=ID,
                ),
            }
        },
    ),
    "list_visit_types": Doc(
        (*V1, 404),
        {
            200: {
                "availability": link(
                    "GET",
                    PRACTICE + "/availability",
                    "Search free slots of the first visit type listed",
                    path_practice_id="$request.path.practice_id",
                    query_visit_type_id="$response.body#/items/0/id",
                ),
            }
        },
    ),
    "change_visit_type": Doc((*V1, *BODY, 403, 404)),
    "add_resource": Doc((*V1, *BODY, 403, 404)),
    "list_resources": Doc((*V1, 403, 404)),
    "put_resource_closures": Doc((*V1, *BODY, 403, 404)),
    "put_schedule": Doc(
        (*V1, *BODY, 404, 409),
        {
            200: {
                "read": link(
                    "GET",
                    PRACTITIONER + "/schedule",
                    "Read the schedule",
                    path_practitioner_id="$request.path.practitioner_id",
                ),
            }
        },
    ),
    "get_schedule": Doc((*V1, 404)),
    "availability": Doc(
        (*V1, *QUERY, 404),
        {
            200: {
                "hold_first_slot": link(
                    "POST",
                    "/v1/holds",
                    "Hold the first slot found",
                    body={
                        "practitioner_id": "$response.body#/slots/0/practitioner_id",
                        "visit_type_id": "$response.body#/visit_type_id",
                        "start": "$response.body#/slots/0/start",
                    },
                ),
            }
        },
    ),
    "hold": Doc(
        (*V1, *BODY, 404, 409, 429),
        {
            201: {
                "read": link("GET", HOLD, "Read the hold", path_hold_id=ID),
                "release": link("DELETE", HOLD, "Release the hold", path_hold_id=ID),
                "book": link("POST", "/v1/appointments", "Book the held slot", body={"hold_id": ID}),
                "reschedule_onto": link(
                    "POST", APPOINTMENT + "/reschedule", "Move an appointment onto this hold", body={"hold_id": ID}
                ),
                "audit": link("GET", "/v1/audit", "The hold's audit trail", query_hold_id=ID),
            }
        },
    ),
    "get_hold": Doc((*V1, 404, 409, 410)),
    "release_hold": Doc((*V1, 403, 404, 409)),
    "book": Doc(
        (*V1, *BODY, 404, 409, 410, 429),
        {201: {**_APPOINTMENT_LINKS, "audit": link("GET", "/v1/audit", "Its audit trail", query_appointment_id=ID)}},
    ),
    "get_appointment": Doc((*V1, 403, 404)),
    "cancel": Doc((*V1, *BODY, 403, 404, 409), {200: {"read": _APPOINTMENT_LINKS["read"]}}, optional_body=True),
    "reschedule": Doc((*V1, *BODY, 403, 404, 409, 410), {200: {"read": _APPOINTMENT_LINKS["read"]}}),
    "list_notifications": Doc((*V1, 403, 404)),
    "get_series": Doc((*V1, 403, 404)),
    "cancel_series": Doc((*V1, *BODY, 403, 404, 409), optional_body=True),
    "join_waitlist": Doc(
        (*V1, *BODY, 404, 409, 429),
        {
            201: {
                "read": link("GET", ENTRY, "Read the entry", path_entry_id=ID),
                "decline": link("POST", ENTRY + "/decline", "Give its offer up", path_entry_id=ID),
            }
        },
    ),
    "list_waitlist": Doc((*V1, 404)),
    "get_waitlist_entry": Doc((*V1, 403, 404)),
    # no links out of accept: with them (into the appointment's operations) the stateful phase of
    # tests/integration/test_openapi_contract.py, which leaves the waitlist out, stopped reaching GET of an appointment (seen in
    # three runs in a row; none without them)
    "accept_offer": Doc((*V1, *BODY, 403, 404, 409, 410, 429), optional_body=True),
    "decline_offer": Doc(
        (*V1, *BODY, 403, 404, 409, 410),
        {200: {"read": link("GET", ENTRY, "Read it", path_entry_id=ID)}},
        optional_body=True,
    ),
    "leave_waitlist": Doc((*V1, 403, 404, 409)),
    "list_audit": Doc(
        (*V1, *QUERY, 404),
        {
            200: {
                "next_page": link(
                    "GET",
                    "/v1/audit",
                    "The next page (only while `next` is not null)",
                    query_cursor="$response.body#/next",
                ),
            }
        },
    ),
    "create_api_key": Doc(
        (*V1, 403, 404),
        {
            201: {
                "revoke": link(
                    "DELETE",
                    PRACTICE + "/api-keys/{key_id}",
                    "Revoke the key",
                    path_practice_id="$response.body#/practice_id",
                    path_key_id=ID,
                ),
            }
        },
    ),
    "revoke_api_key": Doc((*V1, 403, 404)),
    "create_webhook": Doc(
        (*V1, *BODY, 404),
        {
            201: {
                "deliveries": link(
                    "GET",
                    PRACTICE + "/webhooks/{webhook_id}/deliveries",
                    "Its delivery attempts",
                    path_practice_id="$request.path.practice_id",
                    path_webhook_id=ID,
                ),
            }
        },
    ),
    "list_webhooks": Doc((*V1, 404)),
    "get_webhook": Doc((*V1, 404)),
    "delete_webhook": Doc((*V1, 404)),
    "list_deliveries": Doc((*V1, *QUERY, 404)),
    "replay_webhook": Doc((*V1, *QUERY, 404)),
    "create_app_key": Doc(
        (*V1, *BODY, 403, 404),
        {201: {"revoke": link("DELETE", "/v1/app-keys/{key_id}", "Revoke the key", path_key_id=ID)}},
    ),
    "revoke_app_key": Doc((*V1, 403, 404)),
    "healthz": Doc(()),
    "readyz": Doc((503,)),
    "metrics": Doc(()),
}


# operationIds for client generators: the handler's name, or the operation's own name where they differ
OPERATION_IDS = {"availability": "search_availability"}

# The credentials (API.md "Who may do what"), declared for client generators (a generated client sends its bearer
# token on every call; X-Manage-Token is the patient's). The operations that need a bearer token (admin or
# staff) say so; the patient's operations state either credential (the manage token, or staff's bearer token).
# The schemathesis walk of tests/integration/test_openapi_contract.py does not generate credentials from these
# (``generation.with-security-parameters = false``): it sends the admin's token, as an operator would.
SECURITY_SCHEMES = {
    "bearer": SecurityScheme(
        type="http", scheme="bearer",
        description="The admin token, a practice staff key (bks_...) or an app key (bka_..., with X-End-User)",
    ),
    "manageToken": SecurityScheme(
        type="apiKey", name="X-Manage-Token", security_scheme_in="header",
        description="A patient's manage token, from the booking or waitlist answer (one appointment or entry)",
    ),
}  # fmt: skip
CREDENTIAL_OPS = {  # a bearer token is required (admin, or the practice's staff)
    "create_practice", "add_practitioner", "add_visit_type", "put_schedule", "create_api_key", "revoke_api_key",
    "create_app_key", "revoke_app_key", "list_waitlist", "list_audit", "get_schedule", "change_visit_type",
    "create_webhook", "list_webhooks", "get_webhook", "delete_webhook", "list_deliveries", "replay_webhook",
    "add_resource", "list_resources", "put_resource_closures",
}  # fmt: skip
MANAGE_OPS = {  # the patient's operations: X-Manage-Token of the appointment or entry, or a bearer token (staff)
    "get_appointment", "cancel", "reschedule", "list_notifications",
    "get_waitlist_entry", "accept_offer", "decline_offer", "leave_waitlist", "get_series", "cancel_series",
}  # fmt: skip
LIMITED_OPS = {"hold", "book", "join_waitlist", "accept_offer"}  # the abuse limits apply (RateLimit-*)
REPLAYABLE_OPS = {"hold", "book", "accept_offer"}  # Idempotency-Key: Idempotent-Replayed


def components() -> Components:
    return Components(security_schemes=dict(SECURITY_SCHEMES))


def _header(description: str, kind: OpenAPIType = OpenAPIType.STRING) -> OpenAPIHeader:
    return OpenAPIHeader(schema=Schema(type=kind), description=description)


REQUEST_ID = _header(
    "The request's id (the one sent, or a new random id of 32 hex digits); recorded as the audit request_id"
)
RETRY_AFTER = _header("Seconds to wait before trying again", OpenAPIType.INTEGER)
RATE_LIMIT = {
    "RateLimit-Limit": _header("Requests allowed in the sliding minute (the tighter budget)", OpenAPIType.INTEGER),
    "RateLimit-Remaining": _header("Requests left in it", OpenAPIType.INTEGER),
    "RateLimit-Reset": _header("Seconds until the oldest counted request leaves it", OpenAPIType.INTEGER),
}
ETAG = _header("The answer's entity tag (versions and validity it was computed from); absent when stale")


def _response_headers(name: str, status: int) -> dict[str, OpenAPIHeader]:
    headers = {"X-Request-ID": REQUEST_ID}
    if status in (429, 503):
        headers["Retry-After"] = RETRY_AFTER
    if status == 201:
        headers["Location"] = _header("The created resource's path")
        if name in REPLAYABLE_OPS:
            headers["Idempotent-Replayed"] = _header("`true` when this answer replays an earlier one")
    if name in LIMITED_OPS and status not in (400, 401, 403, 413, 503):
        headers.update(RATE_LIMIT)
    if name == "availability" and status in (200, 304):
        headers["ETag"] = ETAG
        headers["Cache-Control"] = _header("`private, max-age=0, must-revalidate`")
        if status == 200:
            headers["Age"] = _header("Seconds since a stale answer's availability was read", OpenAPIType.INTEGER)
            headers["Link"] = _header('`<next page>; rel="next"` when the answer is cut (`truncated`)')
    return headers


class _Documented(Operation):
    """An Operation that adds its links (and an optional body) to what Litestar generated."""

    doc: ClassVar[Doc]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Litestar adds a 400 "ValidationException" of its own shape to any handler with parameters; this API
        # answers those as 422 problems (api/problems.py), so only the problems of the table are listed.
        self.responses = {
            status: response
            for status, response in (self.responses or {}).items()
            if int(status) < 400 or int(status) in self.doc.problems
        }
        for status, links in self.doc.links.items():
            response = (self.responses or {}).get(str(status))
            if response is None or isinstance(response, Reference):
                raise LookupError(f"{self.operation_id}: no {status} response to link from")
            response.links = dict(links)
        name = type(self).__name__.removesuffix("_operation")
        if name == "availability":
            self.responses = {
                **(self.responses or {}),
                "304": OpenAPIResponse(description="Not modified: If-None-Match names the current ETag (no body)"),
            }
        for key, response in (self.responses or {}).items():  # keyed by the status as a string
            if isinstance(response, OpenAPIResponse):
                response.headers = {**(response.headers or {}), **_response_headers(name, int(key))}
        if name in CREDENTIAL_OPS:
            self.security = [{"bearer": []}]
        elif name in MANAGE_OPS:
            self.security = [{"manageToken": []}, {"bearer": []}]
        body = self.request_body
        if self.doc.optional_body and isinstance(body, RequestBody):
            body.required = False
            for media in (body.content or {}).values():
                media.schema = _without_null(media.schema)


def _without_null(schema: Any) -> Any:
    """``X | None`` as a body means "the body may be omitted", not "the body may be JSON null"."""
    if isinstance(schema, Schema) and schema.one_of:
        rest = [s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)]
        if len(rest) == 1:
            return rest[0]
    return schema


def document(handlers: Iterable[HTTPRouteHandler]) -> None:
    """Give each handler its problem responses and links (idempotent: create_app may run many times)."""
    names = set()
    for handler in handlers:
        name = handler.handler_name
        names.add(name)
        doc = DOCS.get(name)
        if doc is None:
            raise LookupError(f"api/openapi.py: DOCS has no entry for the handler {name!r}")
        own = {code: spec for code, spec in (handler.responses or {}).items() if spec.media_type != PROBLEM_JSON}
        handler.responses = {**problem_responses(doc.problems), **own}
        handler.operation_id = OPERATION_IDS.get(name, name)
        handler.operation_class = type(f"{name}_operation", (_Documented,), {"doc": doc})
    if unknown := DOCS.keys() - names:
        raise LookupError(f"api/openapi.py: DOCS names handlers that do not exist: {sorted(unknown)}")


def allow_handlers(handlers: Iterable[HTTPRouteHandler]) -> list[HTTPRouteHandler]:
    """One OPTIONS handler per path, answering ``Allow`` with every method of that path. Registered before the
    others, they keep Litestar from creating its own (which sees only the first handler of each path)."""
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        for path in handler.paths:
            methods.setdefault(path, {"OPTIONS"}).update(handler.http_methods)
    return [_options(path, ", ".join(sorted(allowed))) for path, allowed in methods.items()]


def _options(path: str, allow: str) -> HTTPRouteHandler:
    async def options() -> Response[None]:
        return Response(content=None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

    return route(path, http_method=["OPTIONS"], include_in_schema=False, name=f"options:{path}")(options)


# the rendered strings of the answers (api/render.py) that are instants or dates
OUT_FORMATS = {
    "start": OpenAPIFormat.DATE_TIME, "end": OpenAPIFormat.DATE_TIME, "expires_at": OpenAPIFormat.DATE_TIME,
    "due_at": OpenAPIFormat.DATE_TIME, "sent_at": OpenAPIFormat.DATE_TIME, "at": OpenAPIFormat.DATE_TIME,
    "created_at": OpenAPIFormat.DATE_TIME, "date": OpenAPIFormat.DATE, "from_date": OpenAPIFormat.DATE,
    "to_date": OpenAPIFormat.DATE, "from": OpenAPIFormat.DATE_TIME,
}  # fmt: skip


def _format(schema: Any, fmt: OpenAPIFormat) -> None:
    """A string (or nullable string) property: give it ``format`` (and drop Litestar's random example)."""
    if not isinstance(schema, Schema):
        return
    if schema.type == OpenAPIType.STRING and schema.format is None and schema.pattern is None:
        schema.format, schema.examples = fmt, None
    for sub in schema.one_of or ():
        _format(sub, fmt)


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """msgspec Structs as Litestar renders them, plus ``additionalProperties: false`` for those that refuse
    unknown fields (``forbid_unknown_fields=True``): such a field is a 422, so the schema must say so; and the
    bound on an availability answer's slots (``SEARCH_MAX_SLOTS`` of this app)."""

    def __init__(self, max_slots: int | None = None) -> None:
        super().__init__()
        self.max_slots = max_slots

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if getattr(field_definition.type_, "__name__", "") == "AvailabilityOut" and self.max_slots is not None:
            _bound_slots(schema, self.max_slots)
        if getattr(field_definition.type_, "__name__", "").endswith(("Out", "Item")):
            for prop, sub in (schema.properties or {}).items():
                fmt = OUT_FORMATS.get(prop)
                if fmt is not None:
                    _format(sub, fmt)
        for prop, sub in list((schema.properties or {}).items()):
            # an optional field (``X | UnsetType``) renders as a oneOf of one schema: state that schema itself, so
            # its enum or pattern sits on the property (e.g. Patient.language)
            if (
                isinstance(sub, Schema)
                and sub.one_of
                and len(sub.one_of) == 1
                and isinstance(sub.one_of[0], Schema)
                and set(sub.to_schema()) == {"oneOf"}  # nothing stated beside it (a bound would be lost)
            ):
                schema.properties[prop] = sub.one_of[0]  # type: ignore[index]
        config = getattr(field_definition.type_, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


def _bound_slots(schema: Schema, max_slots: int) -> None:
    """The availability answer's bound, stated: ``maxItems`` on its slots and what a cut answer says."""
    props = schema.properties or {}
    slots = props.get("slots")
    if isinstance(slots, Schema):
        slots.max_items = max_slots
        slots.description = (
            f"At most {max_slots} (SEARCH_MAX_SLOTS): a longer answer is cut after the last whole local day that "
            "fits, or inside the first day when that alone does not fit (before a start instant, all "
            "practitioners' slots at one instant kept together; an instant shared by more practitioners than the "
            "bound is kept whole)"
        )
    truncated = props.get("truncated")
    if isinstance(truncated, Schema):
        truncated.description = "True when the answer was cut: `next` is then the next page's query"
    nxt = props.get("next")
    if isinstance(nxt, Schema):
        nxt.description = (
            "The next page's query (same practice, visit type and practitioner), null when not cut: `date`, `days` "
            "(the asked end kept), `from` (an instant inside `date` when the cut fell inside that day, else null)"
        )
