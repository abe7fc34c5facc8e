"""What each stream event means for webhooks: its type (``appointment.booked`` ...), the appointment or waitlist
entry it is about (deliveries of one subject go in stream order), and its ``data``: ids and local times, the
patient's name and e-mail kept apart (sent only to endpoints with ``include_patient``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

import msgspec

from engine import appointments, catalog, keys, timeutil
from engine import events as ev
from engine.model import Practice
from engine.redis import clients

log = logging.getLogger("booking.webhooks")
# stream event type -> webhook event type
TYPES = {
    "book": "appointment.booked",
    "cancel": "appointment.cancelled",
    "reschedule": "appointment.rescheduled",
    "waitlist_offer": "waitlist.offered",
    "waitlist_accept": "waitlist.accepted",
    "waitlist_lapse": "waitlist.lapsed",
}
EVENT_TYPES = tuple(TYPES.values())


class Prepared(msgspec.Struct, frozen=True):
    """One row of ``webhook_events``."""

    id: str
    practice_id: str
    type: str
    subject_id: str
    at_ms: int
    ord_ms: int
    ord_n: int
    data: str  # the body without the patient: {"type","timestamp","data"} as JSON
    patient: str | None


def event_id(practice_id: str, stream_entry_id: str) -> str:
    """The ``webhook-id``: the same for every read of one stream entry (a replayed entry is stored once)."""
    return "evt_" + hashlib.sha256(f"{practice_id}/{stream_entry_id}".encode()).hexdigest()[:32]


def wanted(e: ev.Event) -> bool:
    return str(e.__struct_config__.tag) in TYPES


def local(epoch_s: int | None, tz: str) -> str | None:
    return None if epoch_s is None else timeutil.format_instant(int(epoch_s), tz)


def local_ms(epoch_ms: int, tz: str) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, timeutil.zone(tz)).isoformat(timespec="milliseconds")


def _timezone(redis: Any, practice_id: str, cache: dict[str, str]) -> str:
    tz = cache.get(practice_id)
    if tz is None:
        raw = redis.hget(keys.practice(practice_id), "record")
        tz = catalog.decode(raw, Practice, "practice", practice_id).timezone if raw is not None else "UTC"
        cache[practice_id] = tz
    return tz


def _appointment_data(redis: Any, e: ev.AppointmentEvent, tz: str) -> tuple[dict[str, Any], dict[str, str] | None]:
    data: dict[str, Any] = {"appointment_id": e.appointment_id, "practice_id": e.practice_id}
    if isinstance(e, ev.AppointmentCancelled):
        d = e.detail
        found = appointments.from_hash(
            e.practice_id, e.appointment_id, redis.hgetall(keys.appointment(e.practice_id, e.appointment_id))
        )
        appt = found[0] if found is not None else None
        data |= {
            "practitioner_id": e.practitioner_id or (appt.practitioner_id if appt else None),
            "visit_type_id": appt.visit_type_id if appt else None,
            "status": "cancelled",
            "version": d.version,
            "start": local(d.start, tz),
            "end": local(d.end, tz),
        }
        patient = {"name": appt.patient.name, "email": appt.patient.email} if appt else None
        return data, patient
    a = e.data
    data |= {
        "practitioner_id": a.practitioner_id,
        "visit_type_id": a.visit_type_id,
        "status": a.status,
        "version": a.version,
        "start": local(a.start, tz),
        "end": local(a.end, tz),
    }
    if isinstance(e, ev.AppointmentRescheduled):
        r = e.detail
        data["previous"] = {
            "practitioner_id": r.from_practitioner_id,
            "start": local(r.from_start, tz),
            "end": local(r.from_end, tz),
        }
    return data, {"name": a.patient.name, "email": a.patient.email}


def _waitlist_data(e: ev.WaitlistEvent, tz: str) -> tuple[dict[str, Any], dict[str, str] | None]:
    d, entry = e.detail, e.data
    data: dict[str, Any] = {
        "entry_id": entry.id,
        "practice_id": e.practice_id,
        "visit_type_id": entry.visit_type_id,
        "practitioner_id": e.practitioner_id or None,
        "status": entry.status,
        "start": local(d.start, tz),
        "end": local(d.end, tz),
    }
    if d.expires_ms is not None:
        data["expires_at"] = local_ms(d.expires_ms, tz)
    if isinstance(e, ev.WaitlistAccepted):
        data["appointment_id"] = d.appointment_id or e.appointment_id or None
    return data, {"name": entry.patient.name, "email": entry.patient.email}


def prepare(redis: Any, events: list[ev.Event]) -> list[Prepared]:
    """The rows of the events webhooks may carry (reads the practices' zones, and a cancelled appointment, from
    Redis: done before the outbox opens its transaction)."""
    zones: dict[str, str] = {}
    out = []
    for e in events:
        typ = TYPES.get(str(e.__struct_config__.tag))
        if typ is None:
            continue
        try:
            tz = _timezone(redis, e.practice_id, zones)
            if isinstance(e, ev.AppointmentBooked | ev.AppointmentCancelled | ev.AppointmentRescheduled):
                data, patient = _appointment_data(redis, e, tz)
                subject = e.appointment_id
            elif isinstance(e, ev.WaitlistOffered | ev.WaitlistAccepted | ev.WaitlistLapsed):
                data, patient = _waitlist_data(e, tz)
                subject = e.data.id
            else:  # pragma: no cover - TYPES names only the kinds above
                continue
        except clients.UNREACHABLE:
            raise  # the outbox reads the entries again
        except Exception as exc:  # noqa: BLE001 - a record that cannot be read must not hold back notifications
            log.error("webhook event of %s %s not recorded: %s", e.practice_id, e.event_id, exc)
            continue
        ms, _, n = e.event_id.partition("-")
        out.append(
            Prepared(
                id=event_id(e.practice_id, e.event_id),
                practice_id=e.practice_id,
                type=typ,
                subject_id=subject,
                at_ms=e.at,
                ord_ms=int(ms or 0),
                ord_n=int(n or 0),
                data=msgspec.json.encode({"type": typ, "timestamp": local_ms(e.at, tz), "data": data}).decode(),
                patient=msgspec.json.encode(patient).decode() if patient else None,
            )
        )
    return out


def body(stored: str, patient: str | None, include_patient: bool) -> bytes:
    """The bytes sent: the stored body, with ``data.patient`` ({"name","email"}) only for an endpoint that asked
    for it. The same bytes on every attempt."""
    if not include_patient or not patient:
        return stored.encode()
    whole = msgspec.json.decode(stored)
    whole["data"]["patient"] = msgspec.json.decode(patient)
    return msgspec.json.encode(whole)
