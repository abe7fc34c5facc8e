"""The event schema (version 1) of the per-practice Redis Streams.

Every state-changing script appends one entry with flat string fields:
``v type seq at actor practice_id practitioner_id hold_id appointment_id request_id detail data``.
``detail`` is the audit detail (JSON, no patient data); ``data`` is the record the persister upserts
(JSON or empty). ``seq`` numbers the audited events of one practice (0 for setup events), so the audit
hash chain can be built in order and gaps are visible.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

AUDITED = ("search", "hold", "release", "expire", "book", "cancel", "reschedule", "schedule")
SETUP = ("practice", "practitioner", "visit_type", "api_key", "api_key_revoked")


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
    detail: dict[str, Any] = {}
    detail_raw: str = "{}"
    data: Any = None


class SearchPerformed(_Event, tag="search"):
    pass


class HoldPlaced(_Event, tag="hold"):
    pass


class HoldReleased(_Event, tag="release"):
    pass


class HoldExpired(_Event, tag="expire"):
    pass


class AppointmentBooked(_Event, tag="book"):
    pass


class AppointmentCancelled(_Event, tag="cancel"):
    pass


class AppointmentRescheduled(_Event, tag="reschedule"):
    pass


class ScheduleChanged(_Event, tag="schedule"):
    pass


class PracticeSaved(_Event, tag="practice"):
    pass


class PractitionerSaved(_Event, tag="practitioner"):
    pass


class VisitTypeSaved(_Event, tag="visit_type"):
    pass


class ApiKeySaved(_Event, tag="api_key"):
    pass


class ApiKeyRevoked(_Event, tag="api_key_revoked"):
    pass


Event = (
    SearchPerformed
    | HoldPlaced
    | HoldReleased
    | HoldExpired
    | AppointmentBooked
    | AppointmentCancelled
    | AppointmentRescheduled
    | ScheduleChanged
    | PracticeSaved
    | PractitionerSaved
    | VisitTypeSaved
    | ApiKeySaved
    | ApiKeyRevoked
)

_decoder = msgspec.json.Decoder()
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
    "api_key",
    "api_key_revoked",
]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def from_stream(entry_id: bytes | str, fields: dict[Any, Any]) -> Event:
    """Decode one stream entry (as redis-py returns it) into a typed event."""
    f = {_text(k): _text(v) for k, v in fields.items()}
    if f.get("v") != "1":
        raise ValueError(f"unknown event version {f.get('v')!r}")
    detail_raw = f.get("detail") or "{}"
    data = f.get("data") or ""
    record = {
        "type": f["type"],
        "event_id": _text(entry_id),
        "seq": int(f["seq"]),
        "at": int(f["at"]),
        "actor": f["actor"],
        "practice_id": f["practice_id"],
        "practitioner_id": f.get("practitioner_id", ""),
        "hold_id": f.get("hold_id", ""),
        "appointment_id": f.get("appointment_id", ""),
        "request_id": f.get("request_id", ""),
        "detail": _decoder.decode(detail_raw) if detail_raw not in ("", "[]") else {},
        "detail_raw": detail_raw,
        "data": _decoder.decode(data) if data.startswith(("{", "[")) else (data or None),
    }
    event: Event = msgspec.convert(record, Event)
    return event
