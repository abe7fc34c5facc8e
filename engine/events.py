"""The event schema (version 1) of the per-practice Redis Streams.

Every state-changing script appends one entry with flat string fields:
``v type seq at actor practice_id practitioner_id hold_id appointment_id request_id detail data``.
``detail`` is the audit detail (JSON, no patient data); ``data`` is the record the persister upserts
(JSON or empty). ``seq`` numbers the audited events of one practice (0 for setup events), so the audit
hash chain can be built in order and gaps are visible.

Each event type is one Struct below, its ``detail`` and ``data`` typed as the Lua script that appends it
writes them (lua/*.lua, ``emit(...)``). ``from_stream`` decodes an entry straight into the tagged union
``Event``; ``to_stream`` is its inverse (the fields a script writes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from engine.codec import text
from engine.model import ApiKey, AppointmentCore, Practice, Practitioner, Resource, Schedule, VisitType, WaitlistRecord

WAITLIST = (
    "waitlist_join",
    "waitlist_offer",
    "waitlist_accept",
    "waitlist_decline",
    "waitlist_lapse",
    "waitlist_leave",
)
AUDITED = ("search", "hold", "release", "expire", "book", "cancel", "reschedule", "schedule", *WAITLIST)
SETUP = ("practice", "practitioner", "visit_type", "resource", "api_key", "api_key_revoked")


# ---------------------------------------------------------------- payloads: what the scripts write
class NoDetail(msgspec.Struct):
    """The detail of events that have none (``{}``; very old entries wrote ``[]``)."""


class SearchDetail(msgspec.Struct, kw_only=True):
    """search.lua: what was asked (encoded by the engine) plus the number of free slots found."""

    date: str
    days: int
    visit_type_id: str
    practitioner_id: str | None = None  # None: every practitioner of the practice
    count: int
    source: str | None = None  # 'cache' or 'stale': answered by an API process's cache, audited after the answer


class HoldDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    """hold.lua, series_hold.lua (one per occurrence: ``series_id`` names its series)"""

    visit_type_id: str
    start: int
    end: int
    expires_ms: int
    series_id: str | None = None
    resource_ids: list[str] | None = None  # the rooms and equipment claimed (a visit type that needs some)


class ExpireDetail(msgspec.Struct, kw_only=True):
    """expire.lua"""

    expires_ms: int


class BookDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    """book.lua, series_book.lua (one per occurrence: ``series_id`` names its series): ``patient_id`` is
    pseudonymous (engine.service.patient_ref), never patient data."""

    visit_type_id: str
    start: int
    end: int
    patient_id: str
    version: int
    series_id: str | None = None
    series_index: int | None = None  # the occurrence's place in its series, from 1
    every_days: int | None = None
    count: int | None = None
    resource_ids: list[str] | None = None  # the rooms and equipment claimed (a visit type that needs some)


class CancelDetail(msgspec.Struct, kw_only=True):
    """cancel.lua"""

    version: int
    start: int
    end: int
    has_reason: bool
    resource_ids: list[str] | None = None  # the rooms and equipment claimed (a visit type that needs some)


class RescheduleDetail(msgspec.Struct, kw_only=True):
    """reschedule.lua: the interval the appointment left and the one it moved to."""

    version: int
    from_practitioner_id: str
    from_start: int
    from_end: int
    start: int
    end: int
    visit_type_id: str
    resource_ids: list[str] | None = None  # the rooms and equipment claimed (a visit type that needs some)


class ScheduleDetail(msgspec.Struct, kw_only=True):
    """put_schedule.lua (encoded by the engine): the shape of the new schedule."""

    windows: int
    closures: int
    slot_step_minutes: int
    horizon_days: int
    min_notice_minutes: int


class WaitlistDetail(msgspec.Struct, kw_only=True):
    """The detail of every waitlist event (docs/waitlist.md): never patient data. ``start``/``end`` name the
    offered interval (offer, accept, decline, lapse, and leave with a live offer); ``expires_ms`` and
    ``cause`` (the freeing action: cancel, release, expire, reschedule, schedule, waitlist_decline,
    waitlist_lapse, waitlist_leave) come with an offer; ``appointment_id`` with an accept."""

    entry_id: str
    visit_type_id: str
    start: int | None = None
    end: int | None = None
    expires_ms: int | None = None
    cause: str | None = None
    resource_ids: list[str] | None = None  # the rooms and equipment claimed (a visit type that needs some)
    appointment_id: str | None = None


class AppointmentRecord(AppointmentCore, kw_only=True):
    """The ``data`` of book.lua, series_book.lua and reschedule.lua: the appointment as the persister stores it
    (series_book.lua's also carries ``series_id``, read from the event's detail instead)."""

    manage_hash: str = ""
    hold_id: str | None = None


class CancelRecord(msgspec.Struct, kw_only=True):
    """The ``data`` of cancel.lua: what a cancellation changes ('' when no reason was given)."""

    id: str
    status: str
    version: int
    cancel_reason: str = ""


# ---------------------------------------------------------------- events
class _Event(msgspec.Struct, tag_field="type", kw_only=True):
    v: int = 1
    event_id: str = ""
    seq: int
    at: int
    actor: str
    practice_id: str
    practitioner_id: str = ""
    hold_id: str = ""
    appointment_id: str = ""
    request_id: str = ""
    detail_raw: str = "{}"  # the detail exactly as the stream holds it (the audit chain hashes it)


class SearchPerformed(_Event, tag="search"):
    detail: SearchDetail
    data: None = None


class Held(_Event, tag="hold"):
    detail: HoldDetail
    data: None = None


class HoldReleased(_Event, tag="release"):
    detail: NoDetail = msgspec.field(default_factory=NoDetail)
    data: None = None


class HoldExpired(_Event, tag="expire"):
    detail: ExpireDetail
    data: None = None


class AppointmentBooked(_Event, tag="book"):
    detail: BookDetail
    data: AppointmentRecord


class AppointmentCancelled(_Event, tag="cancel"):
    detail: CancelDetail
    data: CancelRecord


class AppointmentRescheduled(_Event, tag="reschedule"):
    detail: RescheduleDetail
    data: AppointmentRecord


class ScheduleChanged(_Event, tag="schedule"):
    detail: ScheduleDetail
    data: Schedule


class PracticeSaved(_Event, tag="practice"):
    data: Practice
    detail: NoDetail = msgspec.field(default_factory=NoDetail)


class PractitionerSaved(_Event, tag="practitioner"):
    data: Practitioner
    detail: NoDetail = msgspec.field(default_factory=NoDetail)


class VisitTypeSaved(_Event, tag="visit_type"):
    data: VisitType
    detail: NoDetail = msgspec.field(default_factory=NoDetail)


class ResourceSaved(_Event, tag="resource"):
    """lua/resource.lua: a room or a piece of equipment created, or its closures replaced."""

    data: Resource
    detail: NoDetail = msgspec.field(default_factory=NoDetail)


class ApiKeySaved(_Event, tag="api_key"):
    data: ApiKey
    detail: NoDetail = msgspec.field(default_factory=NoDetail)


class ApiKeyRevoked(_Event, tag="api_key_revoked"):
    data: ApiKey  # the key as it was stored before revoking
    detail: NoDetail = msgspec.field(default_factory=NoDetail)


class _WaitlistEvent(_Event):
    """Every waitlist event carries the entry after the change (the persister upserts it, newer-only by
    ``version``)."""

    detail: WaitlistDetail
    data: WaitlistRecord


class WaitlistJoined(_WaitlistEvent, tag="waitlist_join"):
    pass


class WaitlistOffered(_WaitlistEvent, tag="waitlist_offer"):
    pass


class WaitlistAccepted(_WaitlistEvent, tag="waitlist_accept"):
    pass


class WaitlistDeclined(_WaitlistEvent, tag="waitlist_decline"):
    pass


class WaitlistLapsed(_WaitlistEvent, tag="waitlist_lapse"):
    pass


class WaitlistLeft(_WaitlistEvent, tag="waitlist_leave"):
    pass


Event = (
    SearchPerformed
    | Held
    | HoldReleased
    | HoldExpired
    | AppointmentBooked
    | AppointmentCancelled
    | AppointmentRescheduled
    | ScheduleChanged
    | PracticeSaved
    | PractitionerSaved
    | VisitTypeSaved
    | ResourceSaved
    | ApiKeySaved
    | ApiKeyRevoked
    | WaitlistJoined
    | WaitlistOffered
    | WaitlistAccepted
    | WaitlistDeclined
    | WaitlistLapsed
    | WaitlistLeft
)
WaitlistEvent = WaitlistJoined | WaitlistOffered | WaitlistAccepted | WaitlistDeclined | WaitlistLapsed | WaitlistLeft
AppointmentEvent = AppointmentBooked | AppointmentCancelled | AppointmentRescheduled
EventType = Literal[
    "search",
    "hold",
    "release",
    "expire",
    "book",
    "cancel",
    "reschedule",
    "schedule",
    "practice",
    "practitioner",
    "visit_type",
    "resource",
    "api_key",
    "api_key_revoked",
    "waitlist_join",
    "waitlist_offer",
    "waitlist_accept",
    "waitlist_decline",
    "waitlist_lapse",
    "waitlist_leave",
]

_decoder = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder()
_PLAIN = ("type", "seq", "at", "actor", "practice_id", "practitioner_id", "hold_id", "appointment_id", "request_id")


def from_stream(entry_id: bytes | str, fields: Mapping[Any, Any]) -> Event:
    """Decode one stream entry (as redis-py returns it) into a typed event.

    The flat fields become one JSON object, ``detail`` and ``data`` (JSON already) spliced in as they are,
    and that object is decoded once into the tagged union."""
    f = {text(k): text(v) for k, v in fields.items()}
    if f.get("v") != "1":
        raise ValueError(f"unknown event version {f.get('v')!r}")
    detail = f.get("detail") or "{}"
    head: dict[str, Any] = {k: f[k] for k in _PLAIN if k in f}
    for number in ("seq", "at"):  # the flat stream fields are strings
        if number in head:
            head[number] = int(head[number])
    head["event_id"] = text(entry_id)
    head["detail_raw"] = detail
    return _decoder.decode(
        b"".join(
            (
                _encoder.encode(head)[:-1],
                b',"detail":',
                b"{}" if detail == "[]" else detail.encode(),  # the first scripts' empty detail (old entries)
                b',"data":',
                f.get("data", "").encode() or b"null",
                b"}",
            )
        )
    )


def to_stream(e: Event) -> dict[str, str]:
    """The fields a script appends for this event (``detail`` in canonical encoding, not ``detail_raw``)."""
    return {
        "v": str(e.v),
        "type": str(e.__struct_config__.tag),
        "seq": str(e.seq),
        "at": str(e.at),
        "actor": e.actor,
        "practice_id": e.practice_id,
        "practitioner_id": e.practitioner_id,
        "hold_id": e.hold_id,
        "appointment_id": e.appointment_id,
        "request_id": e.request_id,
        "detail": _encoder.encode(e.detail).decode(),
        "data": "" if e.data is None else _encoder.encode(e.data).decode(),
    }
