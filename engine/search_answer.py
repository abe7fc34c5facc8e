"""What a search answers: the slots (``SearchResult``, packed) and the answer around them (``Answer``)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, Iterable

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


class Answer:
    """A search answer: the practice, the slots, whether they come from the last known availability (``stale``,
    with their ``age_s``), and the audit event still to append (``audit_call``, None: already audited in the
    script that computed it). The answer comes day by day (``days``: per local day, its start and each
    practitioner's free starts), so that a renderer can reuse what it made of a day before; ``result`` is built
    only when asked for."""

    __slots__ = (
        "_result",
        "age_s",
        "audit",
        "audit_call",
        "days",
        "duration_s",
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
) -> str:
    """An opaque tag of an answer, made of what it was computed from: the practice and visit type as read, the
    practitioners asked, the request, and for each practitioner-day (or practitioner, without the cache) the
    versions and the instant time alone changes it (``valid_until_ms``). The versions are bumped in the same
    atomic step as every change to what is offered, and a passed instant makes the answer computed again with a
    new one, so the tag changes whenever the answer may (a change, a hold expiring, the notice or the horizon
    moving) and stays while it may not."""
    parts = (practice, visit_type, practitioner_ids, date.isoformat(), days, practitioner_id, list(computed_from))
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
