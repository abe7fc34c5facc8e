"""Bounded availability answers (issue 22, "Also seen": a 31-day search of a large practice open round the clock
was a 62 MiB answer): an answer longer than SEARCH_MAX_SLOTS is cut, and its next page continues exactly where it
stopped. Checked here on the two forms an answer takes (packed slots from the script, days from the cache) with
random days: each page holds at most the bound, the pages together are the whole answer with nothing lost or
repeated, and both forms cut at the same place."""

from __future__ import annotations

import random

from engine.search_answer import Next, bound_days, bound_packed, order

DAY = 86_400


def _world(rng: random.Random, n: int, days: int) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """``days`` local days (one of 23 or 25 hours now and then) and each practitioner's free starts in them."""
    bounds, lo = [], 1_800_000_000
    for _ in range(days):
        hi = lo + rng.choice([DAY, DAY, DAY, DAY - 3600, DAY + 3600])
        bounds.append((lo, hi))
        lo = hi
    found = []
    for _ in range(n):
        step = rng.choice([300, 600, 900, 1800])
        busy = rng.random() * 0.6
        found.append(
            [s for lo, hi in bounds if rng.random() > 0.15 for s in range(lo, hi, step) if rng.random() > busy]
        )
    return bounds, found


def _days(bounds: list[tuple[int, int]], found: list[list[int]]) -> list[tuple[int, tuple[tuple[int, ...], ...]]]:
    return [(lo, tuple(tuple(s for s in starts if lo <= s < hi) for starts in found)) for lo, hi in bounds]


def _walk(bounds: list[tuple[int, int]], found: list[list[int]], max_slots: int, cached: bool) -> list[list[int]]:
    """Every page of the answer, each asked as a client follows ``next`` (the asked end kept)."""
    n = len(found)
    pages: list[list[int]] = []
    first, from_s = 0, None
    while True:
        asked = bounds[first:]
        sub = [[s for s in starts if asked[0][0] <= s < asked[-1][1]] for starts in found]
        nxt: Next | None
        if cached:
            kept_days, nxt, _ = bound_days(_days(asked, sub), from_s, max_slots)
            page = order([[s for _, day in kept_days for s in day[i]] for i in range(n)], n)
        else:
            page, nxt = bound_packed(order(sub, n), n, asked, from_s, max_slots)
        pages.append(page)
        if nxt is None:
            return pages
        assert page or nxt.day > 0 or nxt.from_s is not None, "a page must move on"
        first, from_s = first + nxt.day, nxt.from_s
        assert len(pages) < 10_000


def test_pages_hold_at_most_the_bound_and_together_the_whole_answer() -> None:
    rng = random.Random(20261207)
    for trial in range(80):
        n, days = rng.randint(1, 6), rng.randint(1, 31)
        bounds, found = _world(rng, n, days)
        whole = order(found, n)
        # at most about 60 pages (a walk costs a page's work times its pages), sometimes one, sometimes a bound
        # below a day's or an instant's slots
        max_slots = rng.choice([len(whole) // rng.randint(1, 60), len(whole) + rng.randint(0, 2), n, n - 1]) or 1
        if max_slots < 50:  # a small bound on a small world: days of few slots
            bounds, found = bounds[:2], [[s for s in starts if s < bounds[0][0] + DAY * 5 // 4] for starts in found]
            whole = order(found, n)
        walks = [_walk(bounds, found, max_slots, cached) for cached in (False, True)]
        assert walks[0] == walks[1], f"trial {trial}: the cache's days and the script's slots cut differently"
        pages = walks[0]
        # a page holds at most the bound, unless one instant alone has more (then exactly that instant)
        for page in pages:
            assert len(page) <= max(max_slots, n), f"trial {trial}"
        joined = [v for page in pages for v in page]
        assert joined == whole, f"trial {trial}: pages lost or repeated slots"
        if len(whole) <= max_slots:
            assert len(pages) == 1
        else:  # a page is cut only where the bound is reached: the next slot would not have fitted
            assert len(pages) > 1


def test_the_cut_falls_after_the_last_whole_day_that_fits() -> None:
    lo = 1_800_000_000
    bounds = [(lo + d * DAY, lo + (d + 1) * DAY) for d in range(4)]
    found = [[b[0] + k * 3600 for b in bounds for k in range(10)]]  # 10 slots a day, one practitioner
    packed, nxt = bound_packed(order(found, 1), 1, bounds, None, 25)
    assert packed == order(found, 1)[:20] and nxt == Next(2, None)  # two whole days; the third starts page two
    packed, nxt = bound_packed(order(found, 1), 1, bounds, None, 7)  # not even the first day fits: cut inside it
    assert packed == order(found, 1)[:7] and nxt == Next(0, lo + 7 * 3600)
    packed, nxt = bound_packed(order(found, 1), 1, bounds, lo + 7 * 3600, 7)  # that page: the day's rest, whole
    assert packed == order(found, 1)[7:10] and nxt == Next(1, None)


def test_an_instant_shared_by_more_practitioners_than_the_bound_is_kept_whole() -> None:
    lo = 1_800_000_000
    bounds = [(lo, lo + DAY)]
    found = [[lo, lo + 600] for _ in range(5)]  # five practitioners, two instants
    packed, nxt = bound_packed(order(found, 5), 5, bounds, None, 3)
    assert [v // 5 for v in packed] == [lo] * 5 and nxt == Next(0, lo + 1)
    kept, nxt2, partial = bound_days(_days(bounds, found), None, 3)
    assert nxt2 == nxt and partial == {lo} and all(row == (lo,) for row in kept[0][1])
