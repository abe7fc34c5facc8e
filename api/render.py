"""Domain records to response bodies, with instants in the practice's local offset."""

from __future__ import annotations

import datetime as dt

import msgspec

from api.schemas import AppointmentOut, AvailabilityOut, HoldOut, SlotOut, WaitlistEntryOut, WaitlistOfferOut
from engine import timeutil
from engine.model import Appointment, Hold, Practice
from engine.service import SearchResult
from engine.waitlist import Entry

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


def entry_out(e: Entry, tz: str) -> WaitlistEntryOut:
    r, o = e.record, e.offer
    offer = None
    if o is not None:
        offer = WaitlistOfferOut(
            hold_id=o.hold_id,
            practitioner_id=o.practitioner_id,
            start=timeutil.format_instant(o.start, tz),
            end=timeutil.format_instant(o.end, tz),
            expires_at=instant_ms(o.expires_ms, tz),
        )
    return WaitlistEntryOut(
        id=r.id,
        practice_id=r.practice_id,
        visit_type_id=r.visit_type_id,
        practitioner_id=r.practitioner_id,
        from_date=r.from_date,
        to_date=r.to_date,
        weekdays=r.weekdays,  # type: ignore[arg-type]
        from_time=r.from_time,
        to_time=r.to_time,
        status=e.status,  # type: ignore[arg-type]
        position=e.position,
        offer=offer,
        manage_token=e.manage_token,
    )


def hold_bytes(h: Hold, tz: str) -> bytes:
    return _enc.encode(hold_out(h, tz))


def appointment_bytes(a: Appointment, tz: str) -> bytes:
    return _enc.encode(appointment_out(a, tz))


_SLOT_CACHE: dict[tuple[str, int, int, str], bytes] = {}


def availability_bytes(
    practice: Practice, visit_type_id: str, date: dt.date, days: int, found: SearchResult, stale: bool = False
) -> bytes:
    """The availability answer, assembled from per-slot JSON fragments that are cached (the same slots are
    shown to every patient searching that day): the cost of a search is a dictionary look-up per slot."""
    tz, n, dur = practice.timezone, len(found.practitioner_ids), found.duration_s
    pids = found.practitioner_ids
    cache = _SLOT_CACHE
    if len(cache) > 500_000:
        cache.clear()
    parts = []
    for v in found.packed:
        start, i = divmod(v, n)
        key = (pids[i], start, dur, tz)
        frag = cache.get(key)
        if frag is None:
            frag = cache[key] = _enc.encode(
                SlotOut(pids[i], timeutil.format_instant(start, tz), timeutil.format_instant(start + dur, tz))
            )
        parts.append(frag)
    head = _enc.encode(
        AvailabilityOut(
            practice_id=practice.id,
            timezone=tz,
            visit_type_id=visit_type_id,
            date=date.isoformat(),
            days=days,
            stale=stale,
            slots=[],
        )
    )
    return head[:-3] + b"[" + b",".join(parts) + b"]}"
