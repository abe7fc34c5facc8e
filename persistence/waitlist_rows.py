"""A waitlist entry record (engine.model.WaitlistRecord) as a ``waitlist_entries`` row, and back.

The row holds every field of the record, so reconciliation rebuilds exactly the JSON Redis held
(``record(row(r)) == r``); the offer's fields are columns of their own (null without a live offer)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from engine.model import Patient, WaitlistOffer, WaitlistRecord
from persistence.audit_rows import utc

_enc = msgspec.json.Encoder()


def _epoch(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def row(r: WaitlistRecord) -> dict[str, Any]:
    o = r.offer
    return {
        "id": r.id,
        "practice_id": r.practice_id,
        "visit_type_id": r.visit_type_id,
        "practitioner_id": r.practitioner_id,
        "from_date": dt.date.fromisoformat(r.from_date),
        "to_date": dt.date.fromisoformat(r.to_date),
        "weekdays": None if r.weekdays is None else _enc.encode(r.weekdays).decode(),
        "from_time": r.from_time,
        "to_time": r.to_time,
        "spans": _enc.encode(r.spans).decode(),
        "status": r.status,
        "version": r.version,
        "join_order": r.order,
        "offer_hold_id": o.hold_id if o else None,
        "offer_practitioner_id": o.practitioner_id if o else None,
        "offer_start_at": utc(o.start) if o else None,
        "offer_end_at": utc(o.end) if o else None,
        "offer_expires_ms": o.expires_ms if o else None,
        "had": _enc.encode(r.had).decode(),
        "appointment_id": r.appointment_id,
        "manage_hash": r.manage_hash,
        "lapsed_ms": r.lapsed_ms,
        "patient": _enc.encode(r.patient).decode(),
        "joined_at_ms": r.joined_ms,
        "updated_at_ms": r.updated_ms,
    }


def record(m: Any) -> WaitlistRecord:
    """The record a stored row (a mapping) holds."""
    offer = None
    if m["offer_hold_id"] is not None:
        offer = WaitlistOffer(
            hold_id=m["offer_hold_id"],
            practitioner_id=m["offer_practitioner_id"],
            start=_epoch(m["offer_start_at"]),
            end=_epoch(m["offer_end_at"]),
            expires_ms=int(m["offer_expires_ms"]),
        )
    return WaitlistRecord(
        id=m["id"],
        practice_id=m["practice_id"],
        visit_type_id=m["visit_type_id"],
        practitioner_id=m["practitioner_id"],
        from_date=m["from_date"].isoformat(),
        to_date=m["to_date"].isoformat(),
        weekdays=None if m["weekdays"] is None else msgspec.json.decode(m["weekdays"], type=list[str]),
        from_time=m["from_time"],
        to_time=m["to_time"],
        spans=msgspec.json.decode(m["spans"], type=list[list[int]]),
        order=int(m["join_order"]),
        status=m["status"],
        version=int(m["version"]),
        joined_ms=int(m["joined_at_ms"]),
        updated_ms=int(m["updated_at_ms"]),
        offer=offer,
        had=msgspec.json.decode(m["had"], type=list[str]),
        appointment_id=m["appointment_id"],
        manage_hash=m["manage_hash"],
        lapsed_ms=None if m["lapsed_ms"] is None else int(m["lapsed_ms"]),
        patient=msgspec.json.decode(m["patient"], type=Patient),
    )
