"""Pure time arithmetic: weekly wall-clock rules to UTC instants (see docs/time.md).

Rules:
- a window's start and end wall-clock times become instants in the practice's zone;
  a start inside a spring-forward gap moves forward by the gap's length, an end inside a gap moves back by it;
  an ambiguous (repeated) start takes its first occurrence, an ambiguous end its second, so the window covers
  the whole wall-clock span;
- slots start at the window's start instant and every ``step`` elapsed seconds after it, and each slot
  (start + duration, elapsed) lies inside the window;
- a slot overlapping a closure is not offered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC = dt.UTC
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class UnknownTimeZoneError(ValueError):
    """The name is not an IANA time zone known to this system."""


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise UnknownTimeZoneError (never a file lookup outside tzdata)."""
    if name not in _zone_names():
        raise UnknownTimeZoneError(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - guarded by the set above
        raise UnknownTimeZoneError(name) from exc


def parse_hhmm(text: str) -> int:
    """'09:30' -> minutes after midnight; '24:00' is allowed as the end of a day."""
    hh, mm = text.split(":")
    minutes = int(hh) * 60 + int(mm)
    if len(hh) != 2 or len(mm) != 2 or not (0 <= int(mm) < 60) or not (0 <= minutes <= 24 * 60):
        raise ValueError(f"not a wall-clock time HH:MM: {text!r}")
    return minutes


def _exists(naive: dt.datetime, tz: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive


def wall_to_epoch(day: dt.date, minutes: int, tz: ZoneInfo, *, is_end: bool) -> int:
    """The instant (epoch seconds) of wall-clock ``minutes`` after local midnight of ``day``.

    Gaps resolve outward-safe: a start moves forward past the gap, an end moves back before it.
    Ambiguous times: a start takes the first occurrence (fold=0), an end the second (fold=1).
    """
    if minutes >= 24 * 60:  # 24:00 is the end of the local day, whatever the next midnight does
        return wall_to_epoch(day + dt.timedelta(days=1), minutes - 24 * 60, tz, is_end=False)
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
    if _exists(naive, tz):
        return int(naive.replace(tzinfo=tz, fold=1 if is_end else 0).timestamp())
    # Inside a gap. fold=0 maps with the offset before the transition (a later instant),
    # fold=1 with the offset after it (an earlier instant): the time shifts by the gap's length.
    first = int(naive.replace(tzinfo=tz, fold=0).timestamp())
    second = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    return min(first, second) if is_end else max(first, second)


def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) instants of the local date ``day`` (23, 24 or 25 hours long, or odd lengths)."""
    start = wall_to_epoch(day, 0, tz, is_end=False)
    end = wall_to_epoch(day + dt.timedelta(days=1), 0, tz, is_end=False)
    return start, end


def day_slots(
    day: dt.date,
    windows: Iterable[tuple[int, int]],
    tz: ZoneInfo,
    step_s: int,
    duration_s: int,
    closures: Sequence[tuple[int, int]] = (),
) -> list[int]:
    """Sorted distinct slot starts (epoch seconds) on the local date ``day``.

    ``windows`` are (start_minute, end_minute) wall-clock pairs for that weekday.
    """
    starts: set[int] = set()
    for w_start, w_end in windows:
        begin = wall_to_epoch(day, w_start, tz, is_end=False)
        finish = wall_to_epoch(day, w_end, tz, is_end=True)
        s = begin
        while s + duration_s <= finish:
            if not any(s < c_end and s + duration_s > c_start for c_start, c_end in closures):
                starts.add(s)
            s += step_s
    return sorted(starts)


def local_date_of(epoch: int, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(epoch, tz).date()


@lru_cache(maxsize=262_144)
def format_instant(epoch: int, tz_name: str) -> str:
    """RFC 3339 in the zone's local offset for that instant, e.g. '2027-03-29T09:00:00+02:00'.

    Cached: the same slot instants are formatted for every search that shows them.
    """
    text = dt.datetime.fromtimestamp(epoch, zone(tz_name)).isoformat()
    return text


def to_epoch(value: dt.datetime) -> int:
    """An aware datetime to whole epoch seconds (callers reject naive values before this)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return int(value.timestamp())
