"""Closures merged once and looked up by bisection (engine/timeutil.py): the slots of a day are the same as when
every slot was checked against every closure, which made a schedule PUT with many closures quadratic."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from engine import timeutil

spans = st.lists(st.tuples(st.integers(0, 2000), st.integers(1, 300)).map(lambda t: (t[0], t[0] + t[1])), max_size=40)


@given(spans, st.integers(-100, 2400), st.integers(0, 500))
def test_spans_within_finds_exactly_the_merged_spans_that_overlap(
    raw: list[tuple[int, int]], begin: int, size: int
) -> None:
    merged = timeutil.merge_spans(raw)
    assert all(a[1] < b[0] for a, b in zip(merged, merged[1:]))  # sorted, apart
    covered = {x for b, e in raw for x in range(b, e)}
    assert covered == {x for b, e in merged for x in range(b, e)}
    end = begin + size
    want = [s for s in merged if s[0] < end and s[1] > begin]
    assert timeutil.spans_within(merged, begin, end) == want


@given(spans.map(lambda xs: [(b * 60, e * 60) for b, e in xs]))
def test_a_days_slots_against_its_near_merged_closures_equal_those_against_all(raw: list[tuple[int, int]]) -> None:
    tz = ZoneInfo("Europe/Paris")
    day = dt.date(2027, 3, 28)  # a 23-hour day
    start, end = timeutil.day_bounds(day, tz)
    closures = [(start + b, start + e) for b, e in raw]
    windows = [(8 * 60, 12 * 60), (13 * 60, 24 * 60)]
    dur = 45 * 60
    near = timeutil.spans_within(timeutil.merge_spans(closures), start - dur, end + dur)
    assert timeutil.day_slots(day, windows, tz, 900, dur, near) == timeutil.day_slots(
        day, windows, tz, 900, dur, closures
    )
