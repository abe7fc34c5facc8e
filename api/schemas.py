"""Request and response bodies of HTTP API v1 (see ../shared/API.md and docs/api.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

import msgspec
from litestar.params import QueryParameter

from engine import limits, timeutil
from engine.model import (
    AwareDatetime,
    Closure,
    FreeText,
    Identifier,
    Language,
    Name,
    Patient,
    PatientIn,
    Schedule,
    WaitlistRequest,
    Weekday,
)

# The IANA names a practice may take (engine/timeutil.practice_zone_names: the system's zones less localtime,
# Factory, posixrules and the sign-only aliases of Etc/GMT; any other is 422 unknown_timezone). Litestar copies
# ``extra_json_schema["extra"]`` into the OpenAPI schema.
IANA_ZONES = sorted(timeutil.practice_zone_names())
Timezone = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        extra_json_schema={
            "description": "An IANA time zone name",
            "examples": ["Europe/Paris"],
            "extra": {"enum": IANA_ZONES},
        },
    ),
]
# Text in request bodies refuses control characters (engine/model.py, LINE_PATTERN and FREE_TEXT_PATTERN).
Reason = FreeText
Id = Identifier
DurationMinutes = Annotated[int, msgspec.Meta(ge=limits.MIN_VISIT_MINUTES, le=limits.MAX_VISIT_MINUTES)]

# ---------------------------------------------------------------- query parameters (the engine checks the same)
# A local date between limits.SEARCH_FIRST_DATE and limits.SEARCH_LAST_DATE (1971-01-01 and 9000-01-01).
SEARCH_DATE_PATTERN = (
    r"^(?:(?:197[1-9]|19[89][0-9]|[2-8][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])|9000-01-01)$"
)
SearchDate = Annotated[
    dt.date,
    QueryParameter(
        description=f"A local date of the practice, {limits.SEARCH_FIRST_DATE} to {limits.SEARCH_LAST_DATE}",
        schema_extra={"pattern": SEARCH_DATE_PATTERN},
    ),
]
SearchDays = Annotated[
    int,
    QueryParameter(
        ge=limits.MIN_SEARCH_DAYS, le=limits.MAX_SEARCH_DAYS, description="How many local dates, from `date` on"
    ),
]
QueryId = Annotated[str, QueryParameter(min_length=1, max_length=200)]
OptionalQueryId = Annotated[str | None, QueryParameter(max_length=200)]
SearchFrom = Annotated[
    str | None,
    QueryParameter(
        name="from",
        max_length=64,
        description="Only slots starting at or after this RFC 3339 instant (with an explicit offset); a cut "
        "answer's `next.from`",
        schema_extra={"format": "date-time"},
    ),
]


class PracticeIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    timezone: Timezone
    language: Language = "en"


class PractitionerIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


# Litestar leaves a bound of 0 out of the document (it tests the bound for truth): stated again in "extra"
BufferMinutes = Annotated[
    int, msgspec.Meta(ge=0, le=limits.MAX_BUFFER_MINUTES, extra_json_schema={"extra": {"minimum": 0}})
]
PerDay = Annotated[int, msgspec.Meta(ge=limits.MIN_PER_DAY, le=limits.MAX_PER_DAY)]


# ids of the practice's resources (an unknown one is 422: engine/resources.py check_ids)
ResourceIds = Annotated[list[str], msgspec.Meta(max_length=20)]


class VisitTypeIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    duration_minutes: DurationMinutes
    buffer_before_minutes: BufferMinutes = 0
    buffer_after_minutes: BufferMinutes = 0
    max_per_day: PerDay | None = None
    resource_ids: ResourceIds = []  # rooms and equipment each visit needs, all of them (unknown: 422)


class VisitTypePatch(msgspec.Struct, forbid_unknown_fields=True):
    """``PATCH /v1/visit-types/{id}``: the fields given change (``max_per_day: null`` removes the limit)."""

    buffer_before_minutes: BufferMinutes | msgspec.UnsetType = msgspec.UNSET
    buffer_after_minutes: BufferMinutes | msgspec.UnsetType = msgspec.UNSET
    max_per_day: PerDay | msgspec.UnsetType | None = msgspec.UNSET
    resource_ids: ResourceIds | msgspec.UnsetType = msgspec.UNSET


class ResourceIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    kind: Literal["room", "equipment"]


class ResourceOut(msgspec.Struct):
    id: str
    practice_id: str
    name: str
    kind: str


class ResourceList(msgspec.Struct):
    items: list[ResourceOut]


class ResourceClosuresOut(ResourceOut, kw_only=True):
    """``PUT /v1/resources/{id}/closures``: the resource, its closures, and the booked appointments that now claim
    it inside one (reported, never moved or cancelled)."""

    closures: list[Closure] = []
    conflicts: list[str] = []


class PracticeOut(msgspec.Struct):
    id: str
    name: str
    timezone: str
    language: str = "en"


class PractitionerOut(msgspec.Struct):
    id: str
    practice_id: str
    name: str


class VisitTypeOut(msgspec.Struct):
    id: str
    practice_id: str
    name: str
    duration_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    max_per_day: int | None = None
    resource_ids: list[str] = []


class VisitTypeChanged(VisitTypeOut, kw_only=True):
    """The changed visit type and the booked appointments it now conflicts with (nothing booked is moved)."""

    conflicts: list[str] = []


class PractitionerList(msgspec.Struct):
    items: list[PractitionerOut]


class VisitTypeList(msgspec.Struct):
    items: list[VisitTypeOut]


class ScheduleOut(Schedule, kw_only=True):
    practitioner_id: str
    conflicts: list[str] = []


class SlotOut(msgspec.Struct):
    practitioner_id: str
    start: str
    end: str


class AvailabilityNextOut(msgspec.Struct):
    """The query of a cut answer's next page (with the same practice, visit type and practitioner)."""

    date: str
    days: int
    from_: str | None = msgspec.field(name="from")


class AvailabilityOut(msgspec.Struct):
    practice_id: str
    timezone: str
    visit_type_id: str
    date: str
    days: int
    stale: bool  # True only when answered from the last known availability while Redis is unreachable
    # an answer is cut after at most SEARCH_MAX_SLOTS slots (engine/search_answer.py ``cut_at``): then
    # ``truncated`` is true and ``next`` is the next page's query (api/openapi.py states both with the bound)
    truncated: bool
    next: AvailabilityNextOut | None
    slots: list[SlotOut]


class RepeatIn(msgspec.Struct, forbid_unknown_fields=True):
    """A series (engine/series.py): ``count`` occurrences, ``every_days`` local dates apart, same wall-clock time."""

    every_days: Annotated[int, msgspec.Meta(ge=1, le=28)]
    count: Annotated[int, msgspec.Meta(ge=2, le=12)]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    practitioner_id: Id
    visit_type_id: Id
    start: AwareDatetime
    repeat: RepeatIn | None = None


HoldStatus = Literal["held", "booked", "released", "expired"]
AppointmentStatus = Literal["booked", "cancelled"]


class HoldOut(msgspec.Struct):
    id: str
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    start: str
    end: str
    expires_at: str
    status: HoldStatus = "held"


class SeriesHoldOut(msgspec.Struct):
    """201 of a hold with ``repeat``: one hold per occurrence, all expiring together."""

    id: str
    series: bool
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    every_days: int
    count: int
    holds: list[HoldOut]
    expires_at: str
    status: HoldStatus = "held"


class BookIn(msgspec.Struct, forbid_unknown_fields=True):
    hold_id: Id
    patient: PatientIn


class RescheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    hold_id: Id


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason | None = None


class AppointmentOut(msgspec.Struct):
    id: str
    status: AppointmentStatus
    version: int
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    start: str
    end: str
    patient: Patient
    manage_token: str | None = None
    timezone: str = ""


class SeriesOut(msgspec.Struct):
    """A booked series: its occurrences (each an appointment of its own), with the manage token when just booked."""

    series_id: str
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    every_days: int
    count: int
    appointments: list[AppointmentOut]
    manage_token: str | None = None


class NotificationOut(msgspec.Struct):
    kind: Literal["confirmation", "reminder", "cancellation"]
    status: Literal["scheduled", "retrying", "sending", "handed", "sent", "cancelled", "skipped", "failed"]
    due_at: str
    sent_at: str | None
    version: int
    offset_seconds: int | None = None
    attempts: int = 0
    last_error: str | None = None


class NotificationList(msgspec.Struct):
    items: list[NotificationOut]


# ---------------------------------------------------------------- the waitlist (API.md, Waitlist)
class WaitlistIn(WaitlistRequest, forbid_unknown_fields=True):
    """Join a practice's waitlist: local dates (inclusive), optional weekdays and local HH:MM times."""


class EmptyIn(msgspec.Struct, forbid_unknown_fields=True):
    """``{}``: accept and decline take no fields."""


class WaitlistOfferOut(msgspec.Struct):
    hold_id: str
    practitioner_id: str
    start: str
    end: str
    expires_at: str


class WaitlistEntryOut(msgspec.Struct):
    id: str
    practice_id: str
    visit_type_id: str
    practitioner_id: str | None
    from_date: str
    to_date: str
    weekdays: list[Weekday] | None
    from_time: str | None
    to_time: str | None
    status: Literal["waiting", "offered", "booked", "left", "ended"]
    position: int
    offer: WaitlistOfferOut | None
    manage_token: str | None  # only in the join's answer


class WaitlistList(msgspec.Struct):
    items: list[WaitlistEntryOut]


# Every `code` a problem answer can carry (docs/api.md "Error codes" lists each with its status and meaning).
# tests/unit/test_problem_codes.py checks that every code the source can answer is here, that the table of
# docs/api.md names exactly these, and that ../shared/API.md names none other.
ProblemCode = Literal[
    "malformed_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "slot_unavailable",
    "hold_used",
    "appointment_cancelled",
    "appointment_archived",
    "schedule_changed",
    "overlap_detected",
    "booking_error",
    "no_offer",
    "waitlist_full",
    "hold_expired",
    "offer_expired",
    "payload_too_large",
    "unsupported_media_type",
    "validation_error",
    "unknown_timezone",
    "idempotency_key_reused",
    "webhook_target_refused",
    "rate_limited",
    "too_many_entries",
    "http_error",
    "internal_error",
    "dependency_unavailable",
    "not_ready",
]
PROBLEM_CODES: frozenset[str] = frozenset(get_args(ProblemCode))


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: ProblemCode
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    unavailable: list[str] | None = None  # slot_unavailable of a series: each occurrence not offered
