"""What a search answers: the slots (``SearchResult``, packed) and the answer around them (``Answer``)."""

from __future__ import annotations

import datetime as dt
import hashlib
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple

import msgspec

from engine import scripts
from engine.model import Practice, Slot
from engine.search_cache import DayEntry


class SearchResult(msgspec.Struct, frozen=True):
    """Free slots, sorted by start then practitioner id, packed as ``start * len(practitioner_ids) + index``
    (one integer sort instead of thousands of objects; see ``slots()`` for the plain form)."""

    practitioner_ids: list[str]
    duration_s: int
    packed: list[int]

    def slots(self) -> list[Slot]:
        n = len(self.practitioner_ids)
        return [Slot(self.practitioner_ids[v % n], v // n, v // n + self.duration_s) for v in self.packed]

    def __len__(self) -> int:
        return len(self.packed)


class Next(NamedTuple):
    """Where the next page of a cut answer starts: at the asked local day of index ``day`` (0 = ``date``), and
    when the cut falls inside that day, at the instant ``from_s`` (epoch seconds; None: the day's start)."""

    day: int
    from_s: int | None


class Answer:
    """A search answer: the practice, the slots, whether they come from the last known availability (``stale``,
    with their ``age_s``), and the audit event still to append (``audit_call``, None: already audited in the
    script that computed it). The answer comes day by day (``days``: per local day, its start and each
    practitioner's free starts), so that a renderer can reuse what it made of a day before; ``result`` is built
    only when asked for. An answer longer than ``SEARCH_MAX_SLOTS`` is cut: ``next`` says where the next page
    starts, ``partial`` names the days (by their start) whose slots the cut or ``from`` shortened (never kept as
    rendered days)."""

    __slots__ = (
        "_result",
        "age_s",
        "audit",
        "audit_call",
        "days",
        "duration_s",
        "next",
        "partial",
        "practice",
        "practitioner_ids",
        "stale",
        "tag",
    )

    def __init__(
        self,
        practice: Practice,
        result: SearchResult | None = None,
        stale: bool = False,
        age_s: int = 0,
        audit_call: scripts.Call | None = None,
        days: list[tuple[int, tuple[tuple[int, ...], ...]]] | None = None,
        practitioner_ids: list[str] | None = None,
        duration_s: int = 0,
    ) -> None:
        self.practice, self._result, self.stale, self.age_s = practice, result, stale, age_s
        self.audit_call, self.days = audit_call, days
        # append the audit event now (retried, counted when it fails) instead of in the process's next batch
        self.audit: Callable[[], Awaitable[None]] | None = None
        self.practitioner_ids = practitioner_ids if result is None else result.practitioner_ids
        self.duration_s = duration_s if result is None else result.duration_s
        # the entity tag: what the answer was computed from (``answer_tag``); None for a stale answer
        self.tag: str | None = None
        self.next: Next | None = None
        self.partial: frozenset[int] = frozenset()

    @property
    def result(self) -> SearchResult:
        if self._result is None:
            found = [[s for _, day in self.days or () for s in day[i]] for i in range(len(self.practitioner_ids or ()))]
            ids = self.practitioner_ids or []
            self._result = SearchResult(ids, self.duration_s, order(found, len(ids)))
        return self._result


_TAG_ENCODER = msgspec.msgpack.Encoder()


def answer_tag(
    practice: Practice,
    visit_type: msgspec.Struct,
    practitioner_ids: list[str],
    date: dt.date,
    days: int,
    practitioner_id: str | None,
    computed_from: Iterable[tuple[tuple[int, ...], int]],
    page: tuple[int | None, int] = (None, 0),
) -> str:
    """An opaque tag of an answer, made of what it was computed from: the practice and visit type as read, the
    practitioners asked, the request, and for each practitioner-day (or practitioner, without the cache) the
    versions and the instant time alone changes it (``valid_until_ms``). The versions are bumped in the same
    atomic step as every change to what is offered, and a passed instant makes the answer computed again with a
    new one, so the tag changes whenever the answer may (a change, a hold expiring, the notice or the horizon
    moving) and stays while it may not. ``page``: the request's ``from`` (epoch seconds or None) and the bound
    on slots per answer, which both shape the answer too."""
    parts = (practice, visit_type, practitioner_ids, date.isoformat(), days, practitioner_id, list(computed_from), page)
    return hashlib.blake2b(_TAG_ENCODER.encode(parts), digest_size=12).hexdigest()


def by_day(
    day_bounds: list[tuple[int, int]], rows: list[list[DayEntry]]
) -> list[tuple[int, tuple[tuple[int, ...], ...]]]:
    """Per practitioner and day entries -> per day: its start, and each practitioner's free starts."""
    return [(lo, tuple(row[d].starts for row in rows)) for d, (lo, _) in enumerate(day_bounds)]


def order(found: list[list[int]], n: int) -> list[int]:
    """Merge the per-practitioner start lists (practitioner ids sorted) into one sorted packed list."""
    packed = [s * n + i for i, starts in enumerate(found) for s in starts]
    packed.sort()
    return packed


# ----------------------------------------------------------------------------------------------- bounded answers
def cut_at(
    day_los: list[int], counts: list[int], day_packed: Callable[[int], list[int]], n: int, max_slots: int
) -> int | None:
    """Where an answer of more than ``max_slots`` slots is cut: the instant before which its kept slots start
    (None: it fits). ``counts``: the slots of each asked local day (starting at ``day_los``), ``day_packed(d)``:
    day d's slots, packed and sorted. The cut falls at the start of the day that does not fit whole, when some
    slot comes before it (whole days); else inside that first day, before the start of slot ``max_slots``
    (0-based), keeping every practitioner's slot at one instant together (when more than ``max_slots`` share the
    first instant, that instant is kept whole: the page always moves on)."""
    total = 0
    for d, c in enumerate(counts):
        if total + c > max_slots:
            if total > 0:
                return day_los[d]
            packed = day_packed(d)
            s = packed[max_slots] // n
            return s if packed[0] // n < s else s + 1
        total += c
    return None


def next_of(day_los: list[int], cut: int) -> Next:
    """The next page of an answer cut at ``cut``."""
    d = bisect_left(day_los, cut + 1) - 1  # the day holding the cut (its start when the cut is a day's start)
    return Next(d, None if cut == day_los[d] else cut)


def bound_packed(
    packed: list[int], n: int, day_bounds: list[tuple[int, int]], from_s: int | None, max_slots: int
) -> tuple[list[int], Next | None]:
    """A computed answer's slots (packed, sorted) from ``from_s`` on, cut after at most ``max_slots``."""
    lo = 0 if from_s is None else bisect_left(packed, from_s * n)
    if len(packed) - lo <= max_slots:
        return (packed[lo:] if lo else packed), None
    day_los = [b[0] for b in day_bounds]
    edges = [max(lo, bisect_left(packed, day_lo * n)) for day_lo in day_los] + [len(packed)]
    counts = [edges[d + 1] - edges[d] for d in range(len(day_los))]
    cut = cut_at(day_los, counts, lambda d: packed[edges[d] : edges[d + 1]], n, max_slots)
    assert cut is not None
    return packed[lo : bisect_left(packed, cut * n)], next_of(day_los, cut)


Day = tuple[int, tuple[tuple[int, ...], ...]]  # a local day's start, and each practitioner's free starts that day


def _within(day: Day, lo: int | None, hi: int | None) -> Day:
    """The day's starts in [lo, hi) (None: unbounded)."""
    return day[0], tuple(tuple(s for s in row if (lo is None or s >= lo) and (hi is None or s < hi)) for row in day[1])


def bound_days(days: list[Day], from_s: int | None, max_slots: int) -> tuple[list[Day], Next | None, frozenset[int]]:
    """The same for an answer day by day (``Answer.days``): the days kept (days before ``from_s`` emptied, the
    last one shortened when the cut falls inside it), where the next page starts, and the days shortened."""
    partial: set[int] = set()
    if from_s is not None:
        days = [_within(day, from_s, None) if day[0] < from_s else day for day in days]
        partial.update(day[0] for day in days if day[0] < from_s)
    counts = [sum(len(row) for row in starts) for _, starts in days]
    if sum(counts) <= max_slots:
        return days, None, frozenset(partial)
    n = len(days[0][1])
    day_los = [lo for lo, _ in days]
    cut = cut_at(day_los, counts, lambda d: order([list(row) for row in days[d][1]], n), n, max_slots)
    assert cut is not None
    nxt = next_of(day_los, cut)
    kept = days[: nxt.day]
    if nxt.from_s is not None:
        kept.append(_within(days[nxt.day], None, cut))
        partial.add(day_los[nxt.day])
    return kept, nxt, frozenset(partial)
