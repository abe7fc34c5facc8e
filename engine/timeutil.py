"""Pure time arithmetic: weekly wall-clock rules to UTC instants (see docs/time.md).

Rules:
- a window's start and end wall-clock times become instants in the practice's zone, and starts and ends
  resolve the same way:
  - a wall time that exists once is that instant;
  - an ambiguous (repeated, fall-back) wall time takes its FIRST occurrence (fold=0): a window starts when
    the clock first shows its start time and ends when the clock first shows its end time;
  - a wall time inside a spring-forward gap is the transition instant itself, i.e. the first instant after
    the gap (Europe/Paris 2027-03-28: any of 02:00..02:59 is 03:00+02:00);
  - 24:00 is the end of the local day, i.e. the next local day's 00:00 (itself resolved by these rules);
- slots start at the window's start instant and every ``step`` elapsed seconds after it, and each slot
  (start + duration, elapsed) lies inside the window;
- a slot overlapping a closure is not offered.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC = dt.UTC
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class UnknownTimeZoneError(ValueError):
    """The name is not an IANA time zone known to this system."""


# Names tzdata lists that are no zone a practice is in: the host's own zone (``localtime``: whatever the server is
# set to), tzdata's placeholder ``Factory`` (offset "-00"), the rules template ``posixrules``, and the aliases of
# Etc/GMT whose names differ only by a sign or a zero (GMT0, GMT+0, GMT-0 and their Etc/ forms), which code
# generators turn into one enum key (openapi-python-client: "Duplicate key GMT0"). ``GMT``, ``Etc/GMT`` and ``UTC``
# name the same zone.
NOT_PRACTICE_ZONES = frozenset(
    {"localtime", "Factory", "posixrules", "GMT0", "GMT+0", "GMT-0", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0"}
)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=1)
def practice_zone_names() -> frozenset[str]:
    """The names a new practice may take (the OpenAPI document's enum): the system's IANA zones less
    ``NOT_PRACTICE_ZONES``. ``zone()`` still reads any of them (a practice created before keeps working)."""
    return _zone_names() - NOT_PRACTICE_ZONES


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


def _offset_s(epoch: int, tz: ZoneInfo) -> int:
    offset = dt.datetime.fromtimestamp(epoch, tz).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _gap_transition(naive: dt.datetime, tz: ZoneInfo) -> int:
    """The transition instant of the spring-forward gap that contains the non-existent wall time ``naive``.

    ``fold=1`` reads ``naive`` with the offset in force after the change, which gives an instant before the
    transition; ``fold=0`` reads it with the offset before the change, which gives an instant at or after it.
    The offset changes in between, so an integer-second binary search finds the first instant of the new
    offset (zoneinfo transitions fall on whole seconds).
    """
    lo = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(naive.replace(tzinfo=tz, fold=0).timestamp())
    lo, hi = min(lo, hi), max(lo, hi)
    before = _offset_s(lo, tz)
    if _offset_s(hi, tz) == before:  # pragma: no cover - a gap always has two offsets around it
        raise ValueError(f"{naive} is not in a spring-forward gap of {tz}")
    while hi - lo > 1:  # invariant: offset(lo) == before != offset(hi)
        mid = (lo + hi) // 2
        if _offset_s(mid, tz) == before:
            lo = mid
        else:
            hi = mid
    return hi


def wall_to_epoch(day: dt.date, minutes: int, tz: ZoneInfo, *, is_end: bool) -> int:
    """The instant (epoch seconds) of wall-clock ``minutes`` after local midnight of ``day``.

    - exists once: that instant;
    - ambiguous (fall back): the first occurrence (fold=0), the instant the clock first shows that time;
    - inside a spring-forward gap: the transition instant, the first instant after the gap;
    - ``minutes == 24*60``: the end of the local day, i.e. ``wall_to_epoch(day + 1, 0)`` (which follows the
      rules above when that midnight is itself skipped or repeated).

    ``is_end`` is kept for callers (window start vs end) but no longer changes the result: starts and ends
    resolve the same way.
    """
    del is_end  # starts and ends resolve alike
    if minutes >= 24 * 60:  # 24:00 is the end of the local day, whatever the next midnight does
        return wall_to_epoch(day + dt.timedelta(days=1), minutes - 24 * 60, tz, is_end=False)
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
    if _exists(naive, tz):
        return int(naive.replace(tzinfo=tz, fold=0).timestamp())
    return _gap_transition(naive, tz)


ZONE_STEP_S = 12 * 3600  # offsets are sampled this far apart, then each change is found to the second


@functools.lru_cache(maxsize=256)
def offset_table(tz: ZoneInfo, lo: int, hi: int) -> tuple[tuple[int, int], ...]:
    """The zone's UTC offsets over [lo, hi] (epoch seconds): ((since, offset_s), ...) sorted, the first one in force
    from before ``lo``, each next one from its transition instant on (found to the second). Lua knows no time zones:
    a waitlist kit carries this so that an offer finds the local date of its start (lua/_prelude.lua ``wl_day``,
    which resolves local midnights as ``wall_to_epoch`` does). Two changes less than ``ZONE_STEP_S`` apart would be
    missed (no IANA zone has them in this century)."""
    table = [(lo, _offset_s(lo, tz))]
    t = lo
    while t < hi:
        nxt = min(t + ZONE_STEP_S, hi)
        if _offset_s(nxt, tz) != table[-1][1]:
            a, b = t, nxt  # invariant: offset(a) == table[-1][1] != offset(b)
            while b - a > 1:
                mid = (a + b) // 2
                if _offset_s(mid, tz) == table[-1][1]:
                    a = mid
                else:
                    b = mid
            table.append((b, _offset_s(b, tz)))
        t = nxt
    return tuple(table)


# Pure (a date and a zone): every search asks it for each of its days. Small and fixed (docs/operations.md): about
# 300 bytes an entry, measured, so 2.4 MiB at most; 8,192 entries hold 264 zone-months of days.
DAY_BOUNDS_MAX = 8_192


@functools.lru_cache(maxsize=DAY_BOUNDS_MAX)
def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) instants of the local date ``day`` (23, 24 or 25 hours long, or odd lengths).

    Both are local midnights through ``wall_to_epoch``: a repeated midnight is its first occurrence, a
    skipped one the transition instant, so consecutive days tile the timeline.
    """
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

    ``windows`` are (start_minute, end_minute) wall-clock pairs for that weekday. Each window runs from
    ``wall_to_epoch(start)`` to ``wall_to_epoch(end)`` (both by the same rules, see the module docstring);
    slots are ``begin + k*step_s`` with ``slot + duration_s <= finish``, all in elapsed seconds.
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


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans covering exactly what ``spans`` cover (touching spans joined)."""
    out: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if out and begin <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((begin, end))
    return out


def spans_within(merged: Sequence[tuple[int, int]], begin: int, end: int) -> list[tuple[int, int]]:
    """The spans of ``merged`` (``merge_spans``' answer) that overlap ``[begin, end)``, found by bisection."""
    i = bisect.bisect_right(merged, (begin, begin)) - 1
    i = max(i, 0)
    out = []
    while i < len(merged) and merged[i][0] < end:
        if merged[i][1] > begin:
            out.append(merged[i])
        i += 1
    return out


def local_date_of(epoch: int, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(epoch, tz).date()


# Small and fixed (docs/operations.md): about 275 bytes an entry, measured, so 1.1 MiB at most. Search answers
# keep their own formatted instants (api/render.py); this serves holds, appointments and waitlist entries.
FORMAT_INSTANT_MAX = 4_096


@lru_cache(maxsize=FORMAT_INSTANT_MAX)
def format_instant(epoch: int, tz_name: str) -> str:
    """RFC 3339 in the zone's local offset for that instant, e.g. '2027-03-29T09:00:00+02:00'.

    Cached (a few thousand): the instant of a hold is formatted again for its booking and its reads.
    """
    text = dt.datetime.fromtimestamp(epoch, zone(tz_name)).isoformat()
    return text


def to_epoch(value: dt.datetime) -> int:
    """An aware datetime to whole epoch seconds (callers reject naive values before this)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return int(value.timestamp())
