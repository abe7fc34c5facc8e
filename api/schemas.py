"""Request and response bodies of HTTP API v1 (see ../shared/API.md and docs/api.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engine.model import AwareDatetime, Name, Patient, Schedule

Timezone = Annotated[str, msgspec.Meta(min_length=1, max_length=64, examples=["Europe/Paris"])]
Reason = Annotated[str, msgspec.Meta(max_length=500)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class PracticeIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    timezone: Timezone


class PractitionerIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


class VisitTypeIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    duration_minutes: Annotated[int, msgspec.Meta(ge=5, le=480)]


class PracticeOut(msgspec.Struct):
    id: str
    name: str
    timezone: str


class PractitionerOut(msgspec.Struct):
    id: str
    practice_id: str
    name: str


class VisitTypeOut(msgspec.Struct):
    id: str
    practice_id: str
    name: str
    duration_minutes: int


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


class AvailabilityOut(msgspec.Struct):
    practice_id: str
    timezone: str
    visit_type_id: str
    date: str
    days: int
    stale: bool  # True only when answered from the last known availability while Redis is unreachable
    slots: list[SlotOut]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    practitioner_id: Id
    visit_type_id: Id
    start: AwareDatetime


class HoldOut(msgspec.Struct):
    id: str
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    start: str
    end: str
    expires_at: str
    status: Literal["held", "booked", "released", "expired"] = "held"


class BookIn(msgspec.Struct, forbid_unknown_fields=True):
    hold_id: Id
    patient: Patient


class RescheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    hold_id: Id


class CancelIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason | None = None


class AppointmentOut(msgspec.Struct):
    id: str
    status: Literal["booked", "cancelled"]
    version: int
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    start: str
    end: str
    patient: Patient
    manage_token: str | None = None
    timezone: str = ""


class NotificationOut(msgspec.Struct):
    kind: Literal["confirmation", "reminder", "cancellation"]
    status: Literal["scheduled", "retrying", "sending", "sent", "cancelled", "skipped", "failed"]
    due_at: str
    sent_at: str | None
    version: int
    offset_seconds: int | None = None
    attempts: int = 0
    last_error: str | None = None


class NotificationList(msgspec.Struct):
    items: list[NotificationOut]


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
