"""The per-process cache of availability by practitioner, visit type and local day, exact by construction.

An entry is the free starts of one practitioner-day with the versions it was computed at and the instant time
alone would change it (``valid_until_ms``). Every script that changes what a practitioner offers bumps the
versions of the UTC-day buckets its interval touches (``bump`` in lua/_prelude.lua) in the same atomic step, and
the search script reports versions and that instant atomically with the starts it computed. A cached day is
used only while the versions read now equal its own and the instant has not passed; otherwise it is computed
again. While Redis is unreachable, entries younger than ``STALE_READ_SECONDS`` may answer, marked stale.

Memory is bounded: a least-recently-used map with a limit in bytes, its share of ``SEARCH_CACHE_BYTES``
(``cache_shares``; 0: a cache that holds nothing, every day computed, on the same path).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from engine.lru import BytesLru

DAY_S = 86400

Key = tuple[str, str, int]  # practitioner id, visit type id, local day start (epoch s)


def cache_shares(search_cache_bytes: int) -> tuple[int, int]:
    """``SEARCH_CACHE_BYTES`` split between the two caches of a search: a quarter for the days' starts
    (``SearchCache``), the rest for the API's rendered days (api/render.py ``RenderedDays``)."""
    days_bytes = search_cache_bytes // 4
    return days_bytes, search_cache_bytes - days_bytes


def buckets(day_start: int, day_end: int, duration_s: int) -> tuple[int, int]:
    """The version buckets a day's answer depends on: a claim or base change overlapping [start, end + duration)
    of the day bumps at least one of them."""
    return day_start // DAY_S, (day_end + duration_s - 1) // DAY_S


class DayEntry:
    """One practitioner-day: its free starts, the versions they were computed at, the instant time alone would
    change them (0: none), and when they were last known right (``read_at_ms``: computed, or confirmed by a
    versions read that found them fresh; a stale answer's ``Age`` counts from it)."""

    __slots__ = ("read_at_ms", "starts", "valid_until_ms", "versions")

    def __init__(
        self, starts: tuple[int, ...], versions: tuple[int, ...], valid_until_ms: int, read_at_ms: int
    ) -> None:
        self.starts, self.versions, self.valid_until_ms, self.read_at_ms = starts, versions, valid_until_ms, read_at_ms

    def fresh(self, versions: tuple[int, ...], now_ms: int) -> bool:
        return self.versions == versions and (self.valid_until_ms == 0 or now_ms < self.valid_until_ms)


_ENTRY_OVERHEAD = 400  # dict slot, key tuple and the entry's headers, measured with sys.getsizeof (bytes)


def entry_size(e: DayEntry) -> int:
    return _ENTRY_OVERHEAD + sys.getsizeof(e.starts) + 28 * len(e.starts) + sys.getsizeof(e.versions)


class SearchCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.hits = self.misses = self.stale_answers = 0
        self._lru: BytesLru[Key, DayEntry] = BytesLru(max_bytes)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def bytes(self) -> int:
        return self._lru.bytes

    @property
    def evictions(self) -> int:
        return self._lru.evictions

    def __len__(self) -> int:
        return len(self._lru)

    def stats(self, audit_failures: int = 0) -> dict[str, int]:
        return {
            "hit": self.hits,
            "miss": self.misses,
            "evict": self.evictions,
            "stale": self.stale_answers,
            "audit_failed": audit_failures,
        }

    def timely(self, key: Key, now_ms: int) -> bool:
        """Whether ``key`` is cached and not yet past the instant time alone changes it (its versions unread)."""
        e = self._lru.peek(key)
        return e is not None and (e.valid_until_ms == 0 or now_ms < e.valid_until_ms)

    def all_timely(self, keys: Iterable[Key], now_ms: int) -> bool:
        """Whether every one of ``keys`` is ``timely`` (an empty cache, or one of capacity 0, answers at once)."""
        return len(self._lru) > 0 and all(self.timely(key, now_ms) for key in keys)

    def get(self, key: Key) -> DayEntry | None:
        return self._lru.get(key)

    def put(self, key: Key, entry: DayEntry) -> None:
        self._lru.put(key, entry, entry_size(entry))
