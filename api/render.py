"""Domain records to response bodies, with instants in the practice's local offset."""

from __future__ import annotations

import datetime as dt

import msgspec

from api.schemas import AppointmentOut, HoldOut
from engine import timeutil
from engine.model import Appointment, Hold

_enc = msgspec.json.Encoder()


def instant_ms(epoch_ms: int, tz_name: str) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, timeutil.zone(tz_name)).isoformat(timespec="milliseconds")


def hold_out(h: Hold, tz: str) -> HoldOut:
    return HoldOut(
        id=h.id,
        practice_id=h.practice_id,
        practitioner_id=h.practitioner_id,
        visit_type_id=h.visit_type_id,
        start=timeutil.format_instant(h.start, tz),
        end=timeutil.format_instant(h.end, tz),
        expires_at=instant_ms(h.expires_at_ms, tz),
        status=h.state,
    )  # type: ignore[arg-type]


def appointment_out(a: Appointment, tz: str) -> AppointmentOut:
    return AppointmentOut(
        id=a.id,
        status=a.status,
        version=a.version,  # type: ignore[arg-type]
        practice_id=a.practice_id,
        practitioner_id=a.practitioner_id,
        visit_type_id=a.visit_type_id,
        start=timeutil.format_instant(a.start, tz),
        end=timeutil.format_instant(a.end, tz),
        patient=a.patient,
        manage_token=a.manage_token,
        timezone=tz,
    )


def hold_bytes(h: Hold, tz: str) -> bytes:
    return _enc.encode(hold_out(h, tz))


def appointment_bytes(a: Appointment, tz: str) -> bytes:
    return _enc.encode(appointment_out(a, tz))
