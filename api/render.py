"""Domain records to response bodies, with instants in the practice's local offset."""

from __future__ import annotations

import builtins
import datetime as dt
import sys
from typing import cast

import msgspec

from api.schemas import (
    AppointmentOut,
    AppointmentStatus,
    AvailabilityNextOut,
    AvailabilityOut,
    HoldOut,
    HoldStatus,
    SeriesHoldOut,
    SeriesOut,
    WaitlistEntryOut,
    WaitlistOfferOut,
)
from engine import timeutil
from engine.lru import BytesLru
from engine.model import Appointment, Hold, Practice
from engine.search_answer import Next
from engine.series import SeriesBooking, SeriesHold
from engine.service import Answer, SearchResult
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
        status=cast(HoldStatus, h.state),
    )


def appointment_out(a: Appointment, tz: str) -> AppointmentOut:
    return AppointmentOut(
        id=a.id,
        status=cast(AppointmentStatus, a.status),
        version=a.version,
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


def series_hold_out(s: SeriesHold, tz: str) -> SeriesHoldOut:
    return SeriesHoldOut(
        id=s.id,
        series=True,
        practice_id=s.practice_id,
        practitioner_id=s.practitioner_id,
        visit_type_id=s.visit_type_id,
        every_days=s.every_days,
        count=s.count,
        holds=[hold_out(h, tz) for h in s.holds],
        expires_at=instant_ms(s.expires_at_ms, tz),
        status=cast(HoldStatus, s.state),
    )


def series_out(s: SeriesBooking, tz: str) -> SeriesOut:
    return SeriesOut(
        series_id=s.series_id,
        practice_id=s.practice_id,
        practitioner_id=s.practitioner_id,
        visit_type_id=s.visit_type_id,
        every_days=s.every_days,
        count=s.count,
        appointments=[appointment_out(a, tz) for a in s.appointments],
        manage_token=s.manage_token,
    )


def hold_bytes(h: Hold, tz: str) -> bytes:
    return _enc.encode(hold_out(h, tz))


def appointment_bytes(a: Appointment, tz: str) -> bytes:
    return _enc.encode(appointment_out(a, tz))


# Formatted instants, per process and small and fixed (docs/operations.md, "Memory of an API worker"): at most
# _INSTANTS_MAX of all zones together (about 164 bytes each, measured: 5.4 MiB at most), and past it every zone's map
# starts again, emptied in place. The rendered days themselves are held inside SEARCH_CACHE_BYTES (RenderedDays).
_INSTANTS_MAX = 32_768
_INSTANTS: dict[str, dict[int, bytes]] = {}  # time zone -> epoch -> the instant as a JSON string (with its quotes)
_held = 0  # instants held in _INSTANTS, all zones together


def _instants(tz: str) -> dict[int, bytes]:
    held = _INSTANTS.get(tz)
    if held is None:  # one (possibly empty) map per zone a practice uses: a few hundred at most
        held = _INSTANTS[tz] = {}
    return held


def _instant(instants: dict[int, bytes], epoch: int, tz: str) -> bytes:
    """``epoch`` formatted in ``tz`` as a JSON string, kept in ``instants`` (the zone's map)."""
    global _held
    if _held >= _INSTANTS_MAX:
        for zone_map in _INSTANTS.values():
            zone_map.clear()  # in place: a caller's reference to its zone's map stays the one held
        _held = 0
    text = instants[epoch] = _enc.encode(timeutil.format_instant(epoch, tz))
    _held += 1
    return text


def instants_held() -> int:
    """How many formatted instants this process keeps (at most ``_INSTANTS_MAX``)."""
    return sum(len(m) for m in _INSTANTS.values())


def _slots(pids: list[str], dur: int, tz: str, packed: list[int]) -> bytes:
    """Slots (packed as ``start * len(pids) + index``, sorted) as comma-joined JSON objects: byte for byte what
    msgspec encodes for ``SlotOut(practitioner_id, start, end)``, built from each practitioner's JSON-encoded id
    and each instant formatted once per zone (the same instants are shown to every practice of a zone and every
    visit type; a per-slot cache missed for most days of a large practice set)."""
    n, instants = len(pids), _instants(tz)
    heads = [b'{"practitioner_id":' + _enc.encode(p) + b',"start":' for p in pids]
    parts = []
    for v in packed:
        start, i = divmod(v, n)
        first = instants.get(start)
        if first is None:
            first = _instant(instants, start, tz)
        last = instants.get(start + dur)
        if last is None:
            last = _instant(instants, start + dur, tz)
        parts.append(heads[i] + first + b',"end":' + last + b"}")
    return b",".join(parts)


def next_page(date: dt.date, days: int, nxt: Next, tz: str) -> AvailabilityNextOut:
    """The query of a cut answer's next page."""
    from_ = None if nxt.from_s is None else timeutil.format_instant(nxt.from_s, tz)
    return AvailabilityNextOut((date + dt.timedelta(days=nxt.day)).isoformat(), days - nxt.day, from_)


def _head(
    practice: Practice, visit_type_id: str, date: dt.date, days: int, stale: bool, nxt: Next | None = None
) -> bytes:
    """The answer without its slots, cut before the empty slot list: ``...,"slots":``."""
    out = AvailabilityOut(
        practice_id=practice.id,
        timezone=practice.timezone,
        visit_type_id=visit_type_id,
        date=date.isoformat(),
        days=days,
        stale=stale,
        truncated=nxt is not None,
        next=None if nxt is None else next_page(date, days, nxt, practice.timezone),
        slots=[],
    )
    return _enc.encode(out)[:-3]


def availability_bytes(
    practice: Practice,
    visit_type_id: str,
    date: dt.date,
    days: int,
    found: SearchResult,
    stale: bool = False,
    nxt: Next | None = None,
) -> bytes:
    """The availability answer: the cost of a search is a dictionary look-up per slot. ``nxt``: where the next
    page of a cut answer starts (``Answer.next``)."""
    slots = _slots(found.practitioner_ids, found.duration_s, practice.timezone, found.packed)
    return _head(practice, visit_type_id, date, days, stale, nxt) + b"[" + slots + b"]}"


DayKey = tuple[str, str, tuple[str, ...], int]  # practice, visit type, practitioners asked, local day start
DayStarts = tuple[tuple[int, ...], ...]  # each practitioner's free starts that day
_DAY_OVERHEAD = 400  # map entry, key and value tuples (bytes, as engine/search_cache.py reckons its own)


class RenderedDays:
    """Per process: each answered local day rendered once, as its comma-joined slots, for as long as the starts
    it was rendered from are the ones the engine answers (compared on every use, so never out of date), in a
    least-recently-used map bounded in bytes (three quarters of ``SEARCH_CACHE_BYTES``)."""

    def __init__(self, max_bytes: int) -> None:
        self.lru: BytesLru[DayKey, tuple[DayStarts, bytes]] = BytesLru(max_bytes)
        self.hits = self.misses = 0

    @property
    def bytes(self) -> int:
        return self.lru.bytes

    def day(self, key: DayKey, starts: DayStarts, pids: list[str], dur: int, tz: str) -> builtins.bytes:
        held = self.lru.get(key)
        if held is not None and held[0] == starts:
            self.hits += 1
            return held[1]
        self.misses += 1
        frag = _day_alone(starts, pids, dur, tz)
        size = _DAY_OVERHEAD + len(frag) + sum(sys.getsizeof(t) + 32 * len(t) for t in starts)
        self.lru.put(key, (starts, frag), size)
        return frag


def availability_days_bytes(
    practice: Practice,
    visit_type_id: str,
    date: dt.date,
    ans: Answer,
    rendered: RenderedDays,
    days: int | None = None,
) -> bytes:
    """The same answer as ``availability_bytes`` (byte for byte), assembled from its days rendered before: local
    days follow each other, so the answer's slots are its days' slots one day after the other. ``days``: as asked
    (default: the answer's days; a cut answer holds fewer). A day the cut or ``from`` shortened is rendered
    alone, never kept: the whole day stays the one rendered for the next answer that asks it."""
    pids, dur, tz = ans.practitioner_ids or [], ans.duration_s, practice.timezone
    who = tuple(pids)
    found = ans.days or []
    parts = [
        _day_alone(starts, pids, dur, tz)
        if lo in ans.partial
        else rendered.day((practice.id, visit_type_id, who, lo), starts, pids, dur, tz)
        for lo, starts in found
    ]
    slots = b",".join(p for p in parts if p)
    asked = len(found) if days is None else days
    return _head(practice, visit_type_id, date, asked, ans.stale, ans.next) + b"[" + slots + b"]}"


def _day_alone(starts: DayStarts, pids: list[str], dur: int, tz: str) -> bytes:
    n = len(pids)
    return _slots(pids, dur, tz, sorted(s * n + i for i, day in enumerate(starts) for s in day))


def availability_answer_bytes(
    practice: Practice, visit_type_id: str, date: dt.date, days: int, ans: Answer, rendered: RenderedDays
) -> bytes:
    """A search answer's body: day by day through ``rendered`` when the engine answered day by day (its cache
    keeps days), else in one go (SEARCH_CACHE_BYTES=0, or a practice without practitioners). ``days``: as asked
    (a cut answer holds fewer)."""
    if ans.days is None:
        return availability_bytes(practice, visit_type_id, date, days, ans.result, ans.stale, ans.next)
    return availability_days_bytes(practice, visit_type_id, date, ans, rendered, days)
