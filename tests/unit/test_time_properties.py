"""Property and example tests for wall-clock -> instant arithmetic (engine.timeutil) and Schedule.covers.

Expected values are derived independently of the code under test: transitions are found by scanning
UTC offsets with zoneinfo directly, and a small reference model (``ref_wall_to_epoch``) resolves wall
times from those offsets following the rules in API.md "What a slot is" / the timeutil docstring:

- starts and ends resolve the same way;
- a wall time inside a spring-forward gap is the transition instant itself (the first instant after the gap);
- an ambiguous (repeated) wall time takes its first occurrence: a window ends when the clock first shows
  its end time;
- 24:00 is the next local day's 00:00 (resolved by the same rules);
- slots start at the window's start instant and every ``step`` elapsed seconds after it, and each slot
  (start + duration, elapsed) lies inside the window; a slot overlapping a closure is not offered.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import timeutil
from engine.model import Schedule

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1)
ZONES = (
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "UTC",
)
YEARS = (2026, 2027, 2028)
FIRST_DAY = dt.date(2026, 1, 1)
LAST_DAY = dt.date(2028, 12, 31)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def off(hours: int, minutes: int = 0) -> dt.timezone:
    sign = -1 if hours < 0 else 1
    return dt.timezone(sign * dt.timedelta(hours=abs(hours), minutes=minutes))


def ts(y: int, mo: int, d: int, h: int, mi: int, tzinfo: dt.tzinfo) -> int:
    """Epoch seconds of a wall time with an EXPLICIT fixed offset (independent of zoneinfo rules)."""
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=tzinfo).timestamp())


def naive_ts(naive: dt.datetime) -> int:
    """Seconds of a naive wall time read as if it were UTC."""
    return int((naive - EPOCH).total_seconds())


# --------------------------------------------------------------------------------------------------------
# Independent transition finder (zoneinfo offsets only, nothing from engine.timeutil)
# --------------------------------------------------------------------------------------------------------


def _offset_at(epoch: int, tz: ZoneInfo) -> int:
    return int(dt.datetime.fromtimestamp(epoch, tz).utcoffset().total_seconds())


@cache
def transitions(tz_name: str) -> tuple[tuple[int, int, int], ...]:
    """(utc_instant, offset_before_s, offset_after_s) for every offset change touching 2026..2028 local days."""
    tz = ZoneInfo(tz_name)
    lo = int(dt.datetime(2025, 12, 30, tzinfo=UTC).timestamp())
    hi = int(dt.datetime(2029, 1, 2, tzinfo=UTC).timestamp())
    found = []
    t, prev = lo, _offset_at(lo, tz)
    while t < hi:
        nxt = t + 3600
        cur = _offset_at(nxt, tz)
        if cur != prev:
            a, b = t, nxt  # offset(a) == prev, offset(b) == cur; bisect to the exact second
            while b - a > 1:
                m = (a + b) // 2
                if _offset_at(m, tz) == prev:
                    a = m
                else:
                    b = m
            found.append((b, prev, cur))
        t, prev = nxt, cur
    return tuple(found)


def transition_day(tr: tuple[int, int, int]) -> dt.date:
    instant, before, _after = tr
    return (EPOCH + dt.timedelta(seconds=instant + before)).date()


@cache
def transition_days(tz_name: str) -> tuple[dt.date, ...]:
    return tuple(
        sorted({transition_day(tr) for tr in transitions(tz_name) if FIRST_DAY <= transition_day(tr) <= LAST_DAY})
    )


def gap_of(tr: tuple[int, int, int]) -> tuple[dt.datetime, dt.datetime] | None:
    """Naive wall interval [a, b) that does not exist (spring forward), or None."""
    instant, before, after = tr
    if after <= before:
        return None
    return EPOCH + dt.timedelta(seconds=instant + before), EPOCH + dt.timedelta(seconds=instant + after)


def repeat_of(tr: tuple[int, int, int]) -> tuple[dt.datetime, dt.datetime] | None:
    """Naive wall interval [a, b) that happens twice (fall back), or None."""
    instant, before, after = tr
    if after >= before:
        return None
    return EPOCH + dt.timedelta(seconds=instant + after), EPOCH + dt.timedelta(seconds=instant + before)


def wall_of(epoch: int, tz: ZoneInfo) -> dt.datetime:
    """Naive local wall time of an instant, computed from the offset found by zoneinfo."""
    return EPOCH + dt.timedelta(seconds=epoch + _offset_at(epoch, tz))


def ref_occurrences(naive: dt.datetime, tz_name: str) -> list[int]:
    """Every instant whose local wall time is ``naive`` (0, 1 or 2 of them), sorted."""
    tz = ZoneInfo(tz_name)
    n = naive_ts(naive)
    offsets = {_offset_at(n + k * 3600, tz) for k in range(-48, 49, 3)}
    for _i, b, a in transitions(tz_name):
        offsets.update((b, a))
    return sorted(n - o for o in offsets if wall_of(n - o, tz) == naive)


def ref_wall_to_epoch(day: dt.date, minutes: int, tz_name: str) -> int:
    """Reference for wall_to_epoch (same result for starts and ends).

    24:00 is simply the next day's 00:00 here; an existing time is its first occurrence; a time in a gap is
    the transition instant found by ``transitions``.
    """
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
    valid = ref_occurrences(naive, tz_name)
    if valid:
        return valid[0]
    for tr in transitions(tz_name):
        gap = gap_of(tr)
        if gap and gap[0] <= naive < gap[1]:
            return tr[0]
    raise AssertionError(f"{naive} neither exists nor lies in a known gap in {tz_name}")


def overlaps(s: int, e: int, closures) -> bool:
    return any(s < ce and e > cs for cs, ce in closures)


def ref_window_slots(day, window, tz_name, step_s, duration_s, closures) -> list[int]:
    begin = ref_wall_to_epoch(day, window[0], tz_name)
    finish = ref_wall_to_epoch(day, window[1], tz_name)
    out = []
    s = begin
    while s + duration_s <= finish:
        if not overlaps(s, s + duration_s, closures):
            out.append(s)
        s += step_s
    return out


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --------------------------------------------------------------------------------------------------------
# Sanity of the independent transition finder (so the later tests are not vacuous)
# --------------------------------------------------------------------------------------------------------


def test_transition_finder_finds_the_known_rules():
    expected_counts = {
        "Europe/Paris": 6,
        "America/New_York": 6,
        "Australia/Lord_Howe": 6,
        "Pacific/Chatham": 6,
        "Asia/Kathmandu": 0,
        "UTC": 0,
    }
    for name, count in expected_counts.items():
        assert len(transition_days(name)) == count, (name, transition_days(name))
    assert dt.date(2027, 3, 28) in transition_days("Europe/Paris")
    assert dt.date(2027, 10, 31) in transition_days("Europe/Paris")
    assert dt.date(2027, 3, 14) in transition_days("America/New_York")
    assert dt.date(2027, 11, 7) in transition_days("America/New_York")
    assert dt.date(2027, 4, 4) in transition_days("Australia/Lord_Howe")
    assert dt.date(2027, 10, 3) in transition_days("Australia/Lord_Howe")
    # Lord Howe shifts by 30 minutes, Chatham by an hour at 02:45/03:45.
    shifts = {abs(a - b) for _i, b, a in transitions("Australia/Lord_Howe")}
    assert shifts == {1800}
    chatham = [gap_of(tr) or repeat_of(tr) for tr in transitions("Pacific/Chatham")]
    assert {(w[0].time(), w[1].time()) for w in chatham} == {(dt.time(2, 45), dt.time(3, 45))}


# --------------------------------------------------------------------------------------------------------
# 1. Random property tests
# --------------------------------------------------------------------------------------------------------

minute_of_day = st.one_of(st.integers(0, 1439), st.integers(60, 270))  # bias towards transition hours


@st.composite
def windows_st(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(minute_of_day)
        end = draw(
            st.one_of(st.integers(start + 1, 1440), st.just(1440), st.integers(start + 1, min(1440, start + 300)))
        )
        out.append((start, end))
    return out


@st.composite
def case_st(draw):
    tz_name = draw(st.sampled_from(ZONES))
    days = transition_days(tz_name)
    any_day = st.dates(FIRST_DAY, LAST_DAY)
    day = draw(st.one_of(any_day, st.sampled_from(days)) if days else any_day)
    windows = draw(windows_st())
    step_s = draw(st.integers(1, 240)) * 60
    duration_s = draw(st.integers(5, 480)) * 60
    # closures anywhere from 2 hours before local midnight to 2 hours after the next one
    base = naive_ts(dt.datetime.combine(day, dt.time())) - 14 * 3600
    closures = []
    for _ in range(draw(st.integers(0, 3))):
        c_start = base + draw(st.integers(0, (24 + 28) * 60)) * 60
        closures.append((c_start, c_start + draw(st.integers(1, 600)) * 60))
    return tz_name, day, windows, step_s, duration_s, closures


@PROPS
@given(case_st())
def test_day_slots_properties(case):
    tz_name, day, windows, step_s, duration_s, closures = case
    tz = timeutil.zone(tz_name)
    slots = timeutil.day_slots(day, windows, tz, step_s, duration_s, closures)

    assert slots == sorted(slots), "sorted"
    assert len(slots) == len(set(slots)), "no duplicates"
    gaps = [g for g in map(gap_of, transitions(tz_name)) if g]

    for s in slots:
        assert isinstance(s, int)
        local = dt.datetime.fromtimestamp(s, tz)
        naive = local.replace(tzinfo=None)
        # a real, existing wall-clock time: local -> instant -> same instant, and not in a gap
        assert int(naive.replace(tzinfo=tz, fold=local.fold).timestamp()) == s
        assert naive == wall_of(s, tz)
        assert not any(a <= naive < b for a, b in gaps), f"{naive} is in a spring-forward gap"
        assert local.date() == day, f"slot {local.isoformat()} is not on {day}"
        assert not overlaps(s, s + duration_s, closures), "slot overlaps a closure"

    reps = [r for r in map(repeat_of, transitions(tz_name)) if r]
    midnight = dt.datetime.combine(day, dt.time())
    union: set[int] = set()
    for w in windows:
        begin = timeutil.wall_to_epoch(day, w[0], tz, is_end=False)
        finish = timeutil.wall_to_epoch(day, w[1], tz, is_end=True)
        # starts and ends resolve the same way
        assert begin == timeutil.wall_to_epoch(day, w[0], tz, is_end=True)
        assert finish == timeutil.wall_to_epoch(day, w[1], tz, is_end=False)
        # the engine's window instants agree with the independent reference
        assert begin == ref_wall_to_epoch(day, w[0], tz_name), (w, "begin")
        assert finish == ref_wall_to_epoch(day, w[1], tz_name), (w, "finish")
        assert begin <= finish
        start_wall = midnight + dt.timedelta(minutes=w[0])
        end_wall = midnight + dt.timedelta(minutes=w[1])
        # every wall minute of [start, end) that exists is covered: its first occurrence lies in the window
        sample = {w[0], w[1] - 1, *range(w[0], w[1], 13)}
        for m in sample:
            occ = ref_occurrences(midnight + dt.timedelta(minutes=m), tz_name)
            if occ:
                assert begin <= occ[0] < finish, (w, hhmm(m), "existing wall minute not covered")
        own = timeutil.day_slots(day, [w], tz, step_s, duration_s, closures)
        for s in own:
            assert begin <= s and s + duration_s <= finish, "slot lies inside its window"
            assert (s - begin) % step_s == 0, "slots are on the elapsed step grid from the window start"
            # the window ends when the clock first shows its end time: no instant of a slot reaches it
            assert wall_of(s, tz) < end_wall and wall_of(s + duration_s - 1, tz) < end_wall, (w, "past the end")
            # and a slot never shows a wall time before the start, except in the second pass of a repeated
            # interval that the start itself lies in (the window starts at the start's first occurrence)
            assert wall_of(s, tz) >= start_wall or any(
                a <= start_wall < b and a <= wall_of(s, tz) < b for a, b in reps
            ), (w, "before the start")
        for a, b in zip(own, own[1:]):
            assert (b - a) % step_s == 0 and b > a
        assert own == ref_window_slots(day, w, tz_name, step_s, duration_s, closures)
        union.update(own)
    assert slots == sorted(union), "multi-window result is the union of the per-window results"


# --------------------------------------------------------------------------------------------------------
# 2. Every DST transition day of 2026..2028 in every zone
# --------------------------------------------------------------------------------------------------------

TRANSITION_CASES = [
    pytest.param(name, tr, id=f"{name}-{transition_day(tr)}")
    for name in ZONES
    for tr in transitions(name)
    if FIRST_DAY <= transition_day(tr) <= LAST_DAY
]
assert len(TRANSITION_CASES) == 24


def _minute_of(naive: dt.datetime) -> int:
    return naive.hour * 60 + naive.minute


@pytest.mark.parametrize("tz_name,tr", TRANSITION_CASES)
def test_transition_day_minute_by_minute(tz_name, tr):
    """A whole-day window, 1-minute step and duration: every existing wall minute once, repeated ones twice."""
    tz = timeutil.zone(tz_name)
    day = transition_day(tr)
    slots = timeutil.day_slots(day, [(0, 1440)], tz, 60, 60)
    walls = [wall_of(s, tz) for s in slots]
    assert all(w.date() == day for w in walls)
    gap, rep = gap_of(tr), repeat_of(tr)
    shift_min = abs(tr[2] - tr[1]) // 60
    if gap:
        assert len(slots) == 1440 - shift_min
        assert not any(gap[0] <= w < gap[1] for w in walls)
        # the minutes on either side of the gap are there
        assert gap[0] - dt.timedelta(minutes=1) in walls and gap[1] in walls
    else:
        assert len(slots) == 1440 + shift_min
        in_rep = [s for s in slots if rep[0] <= wall_of(s, tz) < rep[1]]
        assert len(in_rep) == 2 * shift_min
        by_wall: dict[dt.datetime, set[int]] = {}
        for s in in_rep:
            by_wall.setdefault(wall_of(s, tz), set()).add(_offset_at(s, tz))
        assert len(by_wall) == shift_min
        assert all(offs == {tr[1], tr[2]} for offs in by_wall.values())
    # every wall minute of the day appears (at least once) except the gap's
    minutes = {_minute_of(w) for w in walls}
    expected = set(range(1440))
    if gap:
        expected -= set(range(_minute_of(gap[0]), _minute_of(gap[0]) + shift_min))
    assert minutes == expected
    # elapsed: consecutive slots are exactly 60 s apart
    assert all(b - a == 60 for a, b in zip(slots, slots[1:]))
    assert slots[-1] + 60 == timeutil.day_bounds(day, tz)[1]


@pytest.mark.parametrize("tz_name,tr", TRANSITION_CASES)
@pytest.mark.parametrize("step_min", [1, 5, 7, 15, 30, 45, 60, 90])
def test_transition_day_windows_around_the_shift(tz_name, tr, step_min):
    tz = timeutil.zone(tz_name)
    day = transition_day(tr)
    instant, before, after = tr
    gap, rep = gap_of(tr), repeat_of(tr)
    lo, hi = gap or rep
    # windows starting before, at, inside and after the shifted wall interval; ending inside, at its end or after
    starts = [_minute_of(lo) - 60, _minute_of(lo), _minute_of(lo) + 10, _minute_of(hi)]
    ends = [_minute_of(lo) + 20, _minute_of(hi), _minute_of(hi) + 90]
    for w_start in starts:
        for w_end in (e for e in ends if e > w_start):
            sched = _schedule(day, [(w_start, w_end)], step_min * 60, [])
            for duration_min in (5, step_min, 60):
                slots = timeutil.day_slots(day, [(w_start, w_end)], tz, step_min * 60, duration_min * 60)
                assert slots == ref_window_slots(day, (w_start, w_end), tz_name, step_min * 60, duration_min * 60, [])
                walls = [wall_of(s, tz) for s in slots]
                if gap:
                    assert not any(gap[0] <= w < gap[1] for w in walls), "a slot starts in the spring-forward gap"
                assert all(w.date() == day for w in walls)
                for a, b in zip(slots, slots[1:]):
                    assert b - a == step_min * 60, "consecutive slots are one elapsed step apart"
                for s in slots:
                    assert sched.covers(s, s + duration_min * 60, tz_name)
    if rep:
        # a window covering the repeated interval yields its wall times twice, with two distinct offsets
        w = (_minute_of(lo) - 60, _minute_of(hi) + 60)
        slots = timeutil.day_slots(day, [w], tz, 15 * 60, 15 * 60)
        seen: dict[dt.datetime, set[int]] = {}
        for s in slots:
            wall = wall_of(s, tz)
            if lo <= wall < hi:
                seen.setdefault(wall, set()).add(_offset_at(s, tz))
        expect_walls = {lo + dt.timedelta(minutes=m) for m in range(0, _minute_of(hi) - _minute_of(lo), 15)}
        assert set(seen) == expect_walls
        assert all(offs == {before, after} for offs in seen.values())
        repeated = [s for s in slots if lo <= wall_of(s, tz) < hi]
        assert len(repeated) == 2 * len(expect_walls)
        assert {timeutil.format_instant(s, tz_name)[-6:] for s in repeated} == {
            _fmt_offset(before),
            _fmt_offset(after),
        }


def _fmt_offset(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@pytest.mark.parametrize("tz_name,tr", TRANSITION_CASES)
def test_durations_are_elapsed_across_the_shift(tz_name, tr):
    """A window from 1 h before to 1 h after the shift holds exactly its elapsed length, not its wall length."""
    tz = timeutil.zone(tz_name)
    day = transition_day(tr)
    lo, hi = gap_of(tr) or repeat_of(tr)
    w = (_minute_of(lo) - 60, _minute_of(hi) + 60)
    begin = ref_wall_to_epoch(day, w[0], tz_name)
    finish = ref_wall_to_epoch(day, w[1], tz_name)
    elapsed = finish - begin
    wall_len = (w[1] - w[0]) * 60
    shift = tr[2] - tr[1]
    assert elapsed == wall_len - shift  # spring: shorter; fall: longer
    # exactly-fitting elapsed duration: one slot at the window start
    assert timeutil.day_slots(day, [w], tz, 3600, elapsed) == [begin]
    # one second longer does not fit
    assert timeutil.day_slots(day, [w], tz, 3600, elapsed + 60) == []
    if shift > 0:
        # spring forward: the wall-clock length would "fit" but the elapsed time does not
        assert timeutil.day_slots(day, [w], tz, 3600, wall_len) == []
    else:
        # fall back: longer than the wall-clock length, still fits because it is elapsed
        assert timeutil.day_slots(day, [w], tz, 3600, wall_len + 60) == [begin]


# --------------------------------------------------------------------------------------------------------
# 3. Concrete examples (expected values from explicit offsets, reasoned by hand)
# --------------------------------------------------------------------------------------------------------

CET, CEST = off(1), off(2)
EST, EDT = off(-5), off(-4)
LHST, LHDT = off(10, 30), off(11)
NPT = off(5, 45)


def _fmt(slots, tz_name):
    return [timeutil.format_instant(s, tz_name) for s in slots]


def at(day, offset, *hhmms):
    """Epoch seconds of wall times 'HH:MM' on ``day`` with an EXPLICIT fixed offset."""
    return [ts(day.year, day.month, day.day, int(t[:2]), int(t[3:]), offset) for t in hhmms]


def _slots(tz_name, day, window, step_s, duration_s, iso=None, instants=None, why=""):
    """One day_slots example: a single window on one local day; the expected slots as RFC 3339 strings in the
    zone (written 'HH:MM+hh:mm ...', all on ``day``), as instants, or both."""
    a, b = window
    return pytest.param(
        tz_name,
        day,
        window,
        step_s,
        duration_s,
        iso,
        instants,
        id=f"{tz_name}-{day}-{hhmm(a)}-{hhmm(b)}-step{step_s // 60}m-{duration_s // 60}m{why}",
    )


PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
KATHMANDU = "Asia/Kathmandu"
CHATHAM = "Pacific/Chatham"
SANTIAGO = "America/Santiago"
AZORES = "Atlantic/Azores"
PARIS_SPRING, PARIS_FALL = dt.date(2027, 3, 28), dt.date(2027, 10, 31)
NY_SPRING, NY_FALL = dt.date(2027, 3, 14), dt.date(2027, 11, 7)
LH_FALL, LH_SPRING = dt.date(2027, 4, 4), dt.date(2027, 10, 3)
SANTIAGO_SKIPPED_MIDNIGHT, AZORES_SKIPPED_MIDNIGHT = dt.date(2027, 9, 5), dt.date(2027, 3, 28)

SLOT_EXAMPLES = [
    # ---- Europe/Paris spring forward 2027-03-28: 02:00..02:59 does not exist
    # window 01:00+01:00 (00:00Z) .. 04:00+02:00 (02:00Z): two hours elapsed
    _slots(
        PARIS,
        PARIS_SPRING,
        (60, 240),
        1800,
        1800,
        "01:00+01:00 01:30+01:00 03:00+02:00 03:30+02:00",
        at(PARIS_SPRING, CET, "01:00", "01:30") + at(PARIS_SPRING, CEST, "03:00", "03:30"),
    ),
    # a start of 02:30 becomes 03:00+02:00 (not 03:30+02:00)
    _slots(PARIS, PARIS_SPRING, (150, 240), 1800, 1800, "03:00+02:00 03:30+02:00"),
    # a window entirely inside the gap
    _slots(PARIS, PARIS_SPRING, (135, 165), 60, 60, instants=[]),
    # 00:00-02:00 ends at the transition (02:00+01:00 == 03:00+02:00): two real hours, none lost
    _slots(
        PARIS,
        PARIS_SPRING,
        (0, 120),
        1800,
        1800,
        "00:00+01:00 00:30+01:00 01:00+01:00 01:30+01:00",
        at(PARIS_SPRING, CET, "00:00", "00:30", "01:00", "01:30"),
    ),
    _slots(PARIS, PARIS_SPRING, (0, 120), 3600, 3600, instants=at(PARIS_SPRING, CET, "00:00", "01:00")),
    _slots(PARIS, PARIS_SPRING, (0, 120), 3600, 7200, instants=at(PARIS_SPRING, CET, "00:00")),
    # 01:00-02:00: one real hour; an end inside the gap (02:30) is the same instant as 02:00
    _slots(PARIS, PARIS_SPRING, (60, 120), 1800, 1800, "01:00+01:00 01:30+01:00"),
    _slots(PARIS, PARIS_SPRING, (60, 150), 1800, 1800, "01:00+01:00 01:30+01:00", why="-end-in-the-gap"),
    _slots(PARIS, PARIS_SPRING, (60, 120), 3600, 3600, instants=at(PARIS_SPRING, CET, "01:00")),
    # ---- Europe/Paris fall back 2027-10-31: 02:00..02:59 happens twice
    _slots(
        PARIS,
        PARIS_FALL,
        (60, 240),
        3600,
        3600,
        "01:00+02:00 02:00+02:00 02:00+01:00 03:00+01:00",
        at(PARIS_FALL, CEST, "01:00", "02:00") + at(PARIS_FALL, CET, "02:00", "03:00"),
    ),
    # 01:00-02:00 ends when the clock FIRST shows 02:00 (02:00+02:00), not at the second 02:00:
    # 01:00+02:00 == 2027-10-30T23:00Z .. 02:00+02:00 == 00:00Z, 1 h elapsed
    _slots(
        PARIS,
        PARIS_FALL,
        (60, 120),
        1800,
        1800,
        "01:00+02:00 01:30+02:00",
        at(dt.date(2027, 10, 30), UTC, "23:00", "23:30"),
    ),
    _slots(PARIS, PARIS_FALL, (60, 120), 3600, 3600, instants=at(PARIS_FALL, CEST, "01:00")),
    _slots(PARIS, PARIS_FALL, (60, 120), 3600, 3600 + 60, instants=[]),
    # 02:00-03:00 starts at the first 02:00 (+02:00, 00:00Z) and ends at 03:00+01:00 (02:00Z): 2 h elapsed,
    # both passes of the repeated hour
    _slots(
        PARIS,
        PARIS_FALL,
        (120, 180),
        1800,
        1800,
        "02:00+02:00 02:30+02:00 02:00+01:00 02:30+01:00",
        at(PARIS_FALL, UTC, "00:00", "00:30", "01:00", "01:30"),
    ),
    _slots(PARIS, PARIS_FALL, (120, 180), 3600, 7200, instants=at(PARIS_FALL, CEST, "02:00")),
    # 00:00-05:00: 00:00+02:00 (22:00Z) .. 05:00+01:00 (04:00Z) = 6 h; the repeated hour is offered twice
    _slots(
        PARIS,
        PARIS_FALL,
        (0, 300),
        1800,
        1800,
        "00:00+02:00 00:30+02:00 01:00+02:00 01:30+02:00 02:00+02:00 02:30+02:00"
        " 02:00+01:00 02:30+01:00 03:00+01:00 03:30+01:00 04:00+01:00 04:30+01:00",
    ),
    # a start inside the repeated hour (02:30) is its first occurrence (00:30Z); the end 03:00+01:00 (02:00Z)
    # comes after the whole second pass, so 02:00+01:00 is offered too: 1.5 h elapsed
    _slots(PARIS, PARIS_FALL, (150, 180), 1800, 1800, "02:30+02:00 02:00+01:00 02:30+01:00"),
    # a window inside the repeated hour ends at the first occurrence of its end: 02:00-02:30 is 30 min
    _slots(PARIS, PARIS_FALL, (120, 150), 900, 900, "02:00+02:00 02:15+02:00"),
    # ---- America/New_York spring forward 2027-03-14: 02:00..02:59 does not exist
    _slots(
        NEW_YORK,
        NY_SPRING,
        (60, 240),
        1800,
        1800,
        "01:00-05:00 01:30-05:00 03:00-04:00 03:30-04:00",
        at(NY_SPRING, EST, "01:00", "01:30") + at(NY_SPRING, EDT, "03:00", "03:30"),
    ),
    # 00:00-02:00: 00:00-05:00 (05:00Z) .. 07:00Z, two real hours
    _slots(NEW_YORK, NY_SPRING, (0, 120), 1800, 1800, "00:00-05:00 00:30-05:00 01:00-05:00 01:30-05:00"),
    # 01:00-02:00: one real hour
    _slots(NEW_YORK, NY_SPRING, (60, 120), 1800, 1800, instants=at(NY_SPRING, UTC, "06:00", "06:30")),
    # a start of 02:30 is 03:00-04:00
    _slots(NEW_YORK, NY_SPRING, (150, 240), 1800, 1800, "03:00-04:00 03:30-04:00"),
    # ---- America/New_York fall back 2027-11-07: 01:00..01:59 happens twice; 00:00..03:00 is 4 h elapsed
    _slots(
        NEW_YORK,
        NY_FALL,
        (0, 180),
        3600,
        3600,
        "00:00-04:00 01:00-04:00 01:00-05:00 02:00-05:00",
        at(NY_FALL, EDT, "00:00", "01:00") + at(NY_FALL, EST, "01:00", "02:00"),
    ),
    # window ending at the first repeated wall time (Paris 01:00-02:00 here is 00:00-01:00): 1 h elapsed
    _slots(NEW_YORK, NY_FALL, (0, 60), 1800, 1800, "00:00-04:00 00:30-04:00"),
    # the repeated hour as a window (Paris 02:00-03:00 here is 01:00-02:00): 01:00-04:00 (05:00Z) ..
    # 02:00-05:00 (07:00Z), 2 h elapsed, both passes
    _slots(
        NEW_YORK,
        NY_FALL,
        (60, 120),
        1800,
        1800,
        "01:00-04:00 01:30-04:00 01:00-05:00 01:30-05:00",
        [ts(2027, 11, 7, 5, 0, UTC) + k * 1800 for k in range(4)],
    ),
    # ---- Asia/Kathmandu: 09:00+05:45 == 03:15Z
    _slots(
        KATHMANDU,
        dt.date(2027, 6, 1),
        (540, 570),
        900,
        900,
        "09:00+05:45 09:15+05:45",
        at(dt.date(2027, 6, 1), UTC, "03:15", "03:30"),
    ),
    # ---- Australia/Lord_Howe fall back 2027-04-04, half an hour: 02:00+11:00 -> 01:30+10:30 (15:00Z on Apr 3)
    # window 01:00+11:00 (14:00Z) .. 03:00+10:30 (16:30Z) = 2.5 h elapsed
    _slots(
        LORD_HOWE,
        LH_FALL,
        (60, 180),
        1800,
        1800,
        "01:00+11:00 01:30+11:00 01:30+10:30 02:00+10:30 02:30+10:30",
        at(LH_FALL, LHDT, "01:00", "01:30") + at(LH_FALL, LHST, "01:30", "02:00", "02:30"),
    ),
    # window ending at the first repeated wall time, 00:30-01:30: 13:30Z .. 14:30Z, 1 h elapsed
    _slots(LORD_HOWE, LH_FALL, (30, 90), 1800, 1800, "00:30+11:00 01:00+11:00"),
    # the repeated half hour as a window, 01:30-02:00: 01:30+11:00 (14:30Z) .. 02:00+10:30 (15:30Z), 1 h
    _slots(
        LORD_HOWE,
        LH_FALL,
        (90, 120),
        900,
        900,
        "01:30+11:00 01:45+11:00 01:30+10:30 01:45+10:30",
        [ts(2027, 4, 3, 14, 30, UTC) + k * 900 for k in range(4)],
    ),
    # the literal 01:00-02:00: 14:00Z .. 15:30Z (02:00 exists once, +10:30), 1.5 h
    _slots(LORD_HOWE, LH_FALL, (60, 120), 1800, 1800, "01:00+11:00 01:30+11:00 01:30+10:30"),
    # ---- Australia/Lord_Howe spring forward 2027-10-03, half an hour: 02:00+10:30 -> 02:30+11:00
    _slots(
        LORD_HOWE,
        LH_SPRING,
        (60, 210),
        900,
        900,
        "01:00+10:30 01:15+10:30 01:30+10:30 01:45+10:30 02:30+11:00 02:45+11:00 03:00+11:00 03:15+11:00",
        at(LH_SPRING, LHST, "01:00", "01:15", "01:30", "01:45")
        + at(LH_SPRING, LHDT, "02:30", "02:45", "03:00", "03:15"),
    ),
    # a 02:10 start is 02:30+11:00 (not 02:40+11:00)
    _slots(LORD_HOWE, LH_SPRING, (130, 180), 900, 900, "02:30+11:00 02:45+11:00"),
    # 00:00-02:00: 00:00+10:30 (13:30Z) .. 15:30Z, two real hours
    _slots(LORD_HOWE, LH_SPRING, (0, 120), 1800, 1800, "00:00+10:30 00:30+10:30 01:00+10:30 01:30+10:30"),
    # 01:00-02:00 (and 01:00-02:10, an end inside the gap): one real hour
    _slots(LORD_HOWE, LH_SPRING, (60, 120), 1800, 1800, instants=at(dt.date(2027, 10, 2), UTC, "14:30", "15:00")),
    _slots(LORD_HOWE, LH_SPRING, (60, 130), 1800, 1800, instants=at(dt.date(2027, 10, 2), UTC, "14:30", "15:00")),
    # ---- Pacific/Chatham spring forward 2027-09-26 (last Sunday of September): 02:45+12:45 -> 03:45+13:45
    # 02:30+12:45 + 30 min elapsed lands at 04:00 local (02:45 + 1 h gap + 15)
    _slots(CHATHAM, dt.date(2027, 9, 26), (120, 270), 1800, 1800, "02:00+12:45 02:30+12:45 04:00+13:45"),
    # ---- midnight itself in a gap (section 6): America/Santiago 2027-09-05 00:00-04:00 -> 01:00-03:00
    # 00:00-02:00 on that Sunday: 01:00-03:00 .. 02:00-03:00, one real hour
    _slots(SANTIAGO, SANTIAGO_SKIPPED_MIDNIGHT, (0, 120), 1800, 1800, "01:00-03:00 01:30-03:00"),
    # Atlantic/Azores 2027-03-28 00:00-01:00 -> 01:00+00:00 (01:00Z): a start of 00:30 is 01:00+00:00
    _slots(AZORES, AZORES_SKIPPED_MIDNIGHT, (30, 120), 1800, 1800, "01:00+00:00 01:30+00:00"),
]


@pytest.mark.parametrize("tz_name,day,window,step_s,duration_s,iso,instants", SLOT_EXAMPLES)
def test_day_slots_examples(tz_name, day, window, step_s, duration_s, iso, instants):
    assert iso is not None or instants is not None, "an example with nothing to expect"
    slots = timeutil.day_slots(day, [window], timeutil.zone(tz_name), step_s, duration_s)
    if instants is not None:
        assert slots == instants
    if iso is not None:
        assert _fmt(slots, tz_name) == [f"{day.isoformat()}T{t[:5]}:00{t[5:]}" for t in iso.split()]


def _wall(tz_name, day, minutes, expected, ends=(False, True), why=""):
    """A wall time (minutes after local midnight, each of ``minutes``) resolves to ``expected``, as a window
    start (is_end False) and/or end (True)."""
    kinds = "start+end" if ends == (False, True) else ("end" if ends == (True,) else "start")
    return pytest.param(
        tz_name, day, minutes, ends, expected, id=f"{tz_name}-{day}-{'+'.join(map(hhmm, minutes))}-as-{kinds}{why}"
    )


WALL_EXAMPLES = [
    # Paris spring: any wall time in the gap 02:00..02:59, as a start or an end, is the transition instant
    # 03:00+02:00 == 02:00+01:00 == 01:00Z
    _wall(PARIS, PARIS_SPRING, (120, 150, 179), ts(2027, 3, 28, 3, 0, CEST)),
    # 00:00+01:00 == 2027-03-27T23:00Z .. 03:00+02:00 == 01:00Z: 2 h elapsed
    _wall(PARIS, PARIS_SPRING, (0,), ts(2027, 3, 27, 23, 0, UTC), ends=(False,)),
    _wall(PARIS, PARIS_SPRING, (120,), ts(2027, 3, 28, 1, 0, UTC), ends=(True,)),
    # Paris fall: an ambiguous wall time is its first occurrence, as a start and as an end
    _wall(PARIS, PARIS_FALL, (120,), ts(2027, 10, 31, 2, 0, CEST)),
    _wall(PARIS, PARIS_FALL, (150,), ts(2027, 10, 31, 2, 30, CEST)),
    # 03:00 exists once: 03:00+01:00 == 02:00Z
    _wall(PARIS, PARIS_FALL, (180,), ts(2027, 10, 31, 2, 0, UTC)),
    # 01:00-02:00 ends when the clock FIRST shows 02:00: 02:00+02:00 == 00:00Z
    _wall(PARIS, PARIS_FALL, (120,), ts(2027, 10, 31, 0, 0, UTC), ends=(True,), why="-first-02:00"),
    # New York spring: the gap 02:00..02:59 resolves to the transition 03:00-04:00 == 02:00-05:00 == 07:00Z
    _wall(NEW_YORK, NY_SPRING, (120, 150, 179), ts(2027, 3, 14, 7, 0, UTC)),
    # New York fall: 01:00 (ambiguous) is its first occurrence 01:00-04:00 == 05:00Z
    _wall(NEW_YORK, NY_FALL, (60,), ts(2027, 11, 7, 5, 0, UTC)),
    # Lord Howe fall: 01:30 (ambiguous) is its first occurrence 01:30+11:00 == 14:30Z
    _wall(LORD_HOWE, LH_FALL, (90,), ts(2027, 4, 3, 14, 30, UTC)),
    # Lord Howe spring: the 30-minute gap 02:00..02:29 resolves to the transition 02:30+11:00 == 15:30Z (Oct 2)
    _wall(LORD_HOWE, LH_SPRING, (120, 130, 149), ts(2027, 10, 2, 15, 30, UTC)),
    # Santiago 2027-09-05: 00:00..00:59 does not exist; the transition is 04:00Z
    _wall(SANTIAGO, SANTIAGO_SKIPPED_MIDNIGHT, (0, 30, 59), ts(2027, 9, 5, 4, 0, UTC)),
    # ... and so is the Saturday's 24:00
    _wall(SANTIAGO, SANTIAGO_SKIPPED_MIDNIGHT - dt.timedelta(days=1), (1440,), ts(2027, 9, 5, 4, 0, UTC), ends=(True,)),
    # Azores 2027-03-28: a start of 00:30 is 01:00+00:00 (not 01:30)
    _wall(AZORES, AZORES_SKIPPED_MIDNIGHT, (30,), ts(2027, 3, 28, 1, 0, UTC), ends=(False,)),
]


@pytest.mark.parametrize("tz_name,day,minutes,ends,expected", WALL_EXAMPLES)
def test_wall_to_epoch_examples(tz_name, day, minutes, ends, expected):
    tz = timeutil.zone(tz_name)
    for m in minutes:
        for is_end in ends:
            assert timeutil.wall_to_epoch(day, m, tz, is_end=is_end) == expected, (hhmm(m), is_end)


@pytest.mark.parametrize(
    "instants,apart",
    [
        # the same transition instant, spelled with either offset and in UTC
        pytest.param(
            (ts(2027, 3, 28, 3, 0, CEST), ts(2027, 3, 28, 2, 0, CET), ts(2027, 3, 28, 1, 0, UTC)),
            0,
            id="paris-spring-transition",
        ),
        pytest.param(
            (ts(2027, 3, 14, 7, 0, UTC), ts(2027, 3, 14, 3, 0, EDT), ts(2027, 3, 14, 2, 0, EST)),
            0,
            id="new-york-spring-transition",
        ),
        pytest.param(
            (ts(2027, 10, 2, 15, 30, UTC), ts(2027, 10, 3, 2, 30, LHDT), ts(2027, 10, 3, 2, 0, LHST)),
            0,
            id="lord-howe-spring-transition",
        ),
        pytest.param(
            (ts(2027, 9, 5, 4, 0, UTC), ts(2027, 9, 5, 1, 0, off(-3)), ts(2027, 9, 5, 0, 0, off(-4))),
            0,
            id="santiago-midnight-transition",
        ),
        pytest.param(
            (ts(2027, 4, 4, 1, 0, LHDT), int(dt.datetime(2027, 4, 3, 14, 0, tzinfo=UTC).timestamp())),
            0,
            id="lord-howe-fall-0100",
        ),
        # Paris spring: 01:30+01:00 is exactly 30 min elapsed before 03:00+02:00 (the last 30-minute slot of
        # 00:00-02:00 ends exactly at the transition)
        pytest.param((ts(2027, 3, 28, 1, 30, CET), ts(2027, 3, 28, 3, 0, CEST)), 1800, id="paris-spring-0130-to-0300"),
        # Paris fall: the hourly slots of 01:00-04:00 are an hour apart through the repeated hour
        pytest.param(
            (
                ts(2027, 10, 31, 1, 0, CEST),
                ts(2027, 10, 31, 2, 0, CEST),
                ts(2027, 10, 31, 2, 0, CET),
                ts(2027, 10, 31, 3, 0, CET),
            ),
            3600,
            id="paris-fall-hourly",
        ),
    ],
)
def test_hand_derived_instants_are_this_far_apart(instants, apart):
    """The expected values above are written with explicit offsets; these are the facts about them the
    examples rely on."""
    assert all(b - a == apart for a, b in zip(instants, instants[1:]))


@pytest.mark.parametrize(
    "tz_name,day,expected",
    [
        ("Europe/Paris", dt.date(2027, 1, 15), "2027-01-15T09:00:00+01:00"),
        ("Europe/Paris", dt.date(2027, 7, 15), "2027-07-15T09:00:00+02:00"),
        ("America/New_York", dt.date(2027, 1, 15), "2027-01-15T09:00:00-05:00"),
        ("America/New_York", dt.date(2027, 7, 15), "2027-07-15T09:00:00-04:00"),
        ("Australia/Lord_Howe", dt.date(2027, 1, 15), "2027-01-15T09:00:00+11:00"),
        ("Australia/Lord_Howe", dt.date(2027, 7, 15), "2027-07-15T09:00:00+10:30"),
        ("Pacific/Chatham", dt.date(2027, 1, 15), "2027-01-15T09:00:00+13:45"),
        ("Pacific/Chatham", dt.date(2027, 7, 15), "2027-07-15T09:00:00+12:45"),
        ("Asia/Kathmandu", dt.date(2027, 1, 15), "2027-01-15T09:00:00+05:45"),
        ("Asia/Kathmandu", dt.date(2027, 7, 15), "2027-07-15T09:00:00+05:45"),
        ("UTC", dt.date(2027, 7, 15), "2027-07-15T09:00:00+00:00"),
    ],
)
def test_nine_oclock_is_nine_oclock_local(tz_name, day, expected):
    tz = timeutil.zone(tz_name)
    slots = timeutil.day_slots(day, [(540, 600)], tz, 3600, 3600)
    assert len(slots) == 1
    assert timeutil.format_instant(slots[0], tz_name) == expected
    assert slots[0] == int(dt.datetime.fromisoformat(expected).timestamp())


# --------------------------------------------------------------------------------------------------------
# 4. day_bounds
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tz_name,day,hours",
    [
        ("Europe/Paris", dt.date(2027, 3, 28), 23),
        ("Europe/Paris", dt.date(2027, 10, 31), 25),
        ("Europe/Paris", dt.date(2027, 6, 1), 24),
        ("America/New_York", dt.date(2027, 3, 14), 23),
        ("America/New_York", dt.date(2027, 11, 7), 25),
        ("Australia/Lord_Howe", dt.date(2027, 4, 4), 24.5),
        ("Australia/Lord_Howe", dt.date(2027, 10, 3), 23.5),
        ("Pacific/Chatham", dt.date(2027, 4, 4), 25),
        ("Pacific/Chatham", dt.date(2027, 9, 26), 23),
        ("Asia/Kathmandu", dt.date(2027, 3, 28), 24),
        ("UTC", dt.date(2027, 3, 28), 24),
    ],
)
def test_day_bounds_examples(tz_name, day, hours):
    start, end = timeutil.day_bounds(day, timeutil.zone(tz_name))
    assert end - start == int(hours * 3600)


@pytest.mark.parametrize("tz_name", ZONES)
def test_day_bounds_every_day(tz_name):
    tz = timeutil.zone(tz_name)
    tdays = set(transition_days(tz_name))
    day = FIRST_DAY
    prev_end = None
    while day <= LAST_DAY:
        start, end = timeutil.day_bounds(day, tz)
        # local midnight of these zones always exists once: start = midnight - offset(at that instant)
        midnight = naive_ts(dt.datetime.combine(day, dt.time()))
        assert start == midnight - _offset_at(start, tz)
        assert wall_of(start, tz) == dt.datetime.combine(day, dt.time())
        assert wall_of(end, tz) == dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
        assert end - start == 86400 + _offset_at(start, tz) - _offset_at(end, tz)
        if day not in tdays:
            assert end - start == 86400
        else:
            assert end - start != 86400
        if prev_end is not None:
            assert start == prev_end, "days tile the timeline"
        # a 24:00 window end is the end of the day
        assert timeutil.wall_to_epoch(day, 1440, tz, is_end=True) == end
        prev_end = end
        day += dt.timedelta(days=1)


@pytest.mark.parametrize(
    "tz_name,day,start,end",
    [
        # Atlantic/Azores shifts at local midnight: 2027-03-28 00:00-01:00 -> 01:00+00:00 (00:00 skipped);
        # 2027-10-31 01:00+00:00 -> 00:00-01:00 (00:00..00:59 happens twice)
        ("Atlantic/Azores", dt.date(2027, 3, 27), ts(2027, 3, 27, 0, 0, off(-1)), ts(2027, 3, 28, 1, 0, off(0))),
        ("Atlantic/Azores", dt.date(2027, 3, 28), ts(2027, 3, 28, 1, 0, off(0)), ts(2027, 3, 29, 0, 0, off(0))),
        ("Atlantic/Azores", dt.date(2027, 10, 30), ts(2027, 10, 30, 0, 0, off(0)), ts(2027, 10, 31, 0, 0, off(0))),
        ("Atlantic/Azores", dt.date(2027, 10, 31), ts(2027, 10, 31, 0, 0, off(0)), ts(2027, 11, 1, 0, 0, off(-1))),
        # America/Havana 2027-11-07 01:00-04:00 -> 00:00-05:00
        ("America/Havana", dt.date(2027, 11, 6), ts(2027, 11, 6, 0, 0, off(-4)), ts(2027, 11, 7, 0, 0, off(-4))),
        ("America/Havana", dt.date(2027, 11, 7), ts(2027, 11, 7, 0, 0, off(-4)), ts(2027, 11, 8, 0, 0, off(-5))),
        # America/Santiago 2027-09-05 00:00-04:00 -> 01:00-03:00: the day starts at the transition (04:00Z)
        ("America/Santiago", dt.date(2027, 9, 5), ts(2027, 9, 5, 4, 0, UTC), ts(2027, 9, 6, 0, 0, off(-3))),
    ],
)
def test_day_bounds_when_midnight_itself_shifts(tz_name, day, start, end):
    tz = timeutil.zone(tz_name)
    assert timeutil.day_bounds(day, tz) == (start, end)
    assert timeutil.day_bounds(day + dt.timedelta(days=1), tz)[0] == end
    assert timeutil.day_bounds(day - dt.timedelta(days=1), tz)[1] == start


# --------------------------------------------------------------------------------------------------------
# 5. Schedule.covers agrees with day_slots
# --------------------------------------------------------------------------------------------------------


def _schedule(day, windows, step_s, closures) -> Schedule:
    return msgspec.convert(
        {
            "weekly": [{"day": timeutil.WEEKDAYS[day.weekday()], "start": hhmm(a), "end": hhmm(b)} for a, b in windows],
            "closures": [
                {"start": dt.datetime.fromtimestamp(a, UTC), "end": dt.datetime.fromtimestamp(b, UTC)}
                for a, b in closures
            ],
            "slot_step_minutes": step_s // 60,
        },
        Schedule,
    )


@PROPS
@given(case_st(), st.lists(st.tuples(st.integers(0, 26 * 3600), st.integers(1, 8 * 3600)), max_size=5))
def test_covers_agrees_with_day_slots(case, probes):
    tz_name, day, windows, step_s, duration_s, closures = case
    tz = timeutil.zone(tz_name)
    sched = _schedule(day, windows, step_s, closures)
    assert sched.windows_for(day.weekday()) == windows
    assert sched.closure_spans() == closures
    other = (day.weekday() + 1) % 7
    assert sched.windows_for(other) == []

    slots = timeutil.day_slots(day, sched.windows_for(day.weekday()), tz, step_s, duration_s, sched.closure_spans())
    for s in slots:
        assert sched.covers(s, s + duration_s, tz_name), timeutil.format_instant(s, tz_name)

    # the slots a closure removed are not covered either
    for w in windows:
        for s in ref_window_slots(day, w, tz_name, step_s, duration_s, []):
            if overlaps(s, s + duration_s, closures):
                assert s not in slots
                assert not sched.covers(s, s + duration_s, tz_name)

    # arbitrary intervals starting on that local day, against the reference
    day_start, day_end = timeutil.day_bounds(day, tz)
    for offset_s, length_s in probes:
        start = day_start + offset_s
        if start >= day_end:
            continue
        end = start + length_s
        expected = not overlaps(start, end, closures) and any(
            ref_wall_to_epoch(day, a, tz_name) <= start and end <= ref_wall_to_epoch(day, b, tz_name)
            for a, b in windows
        )
        assert sched.covers(start, end, tz_name) == expected


# --------------------------------------------------------------------------------------------------------
# 6. Midnight itself shifts (Atlantic/Azores, America/Havana, America/Santiago; none of ZONES does).
# "24:00" is the end of the local day, i.e. the next day's 00:00 (day_bounds' end); a skipped midnight is
# the transition instant (rule for gaps), a repeated one its first occurrence.
# Expected values below are hand-derived from explicit offsets. The examples of a midnight inside a gap
# (America/Santiago 2027-09-05, Atlantic/Azores 2027-03-28) are rows of the tables in section 3 and of
# test_day_bounds_when_midnight_itself_shifts.
# --------------------------------------------------------------------------------------------------------

AZOT, AZOST = off(-1), off(0)  # Azores winter -01:00, summer +00:00
CUBA_DT, CUBA_ST = off(-4), off(-5)


@pytest.mark.parametrize(
    "tz_name,day,expected",
    [
        # Azores 2027-10-31 01:00+00:00 -> 00:00-01:00: Sunday 00:00..00:59 happens twice
        (
            "Atlantic/Azores",
            dt.date(2027, 10, 30),
            [ts(2027, 10, 30, h, 0, AZOST) for h in (21, 22, 23)],
        ),
        # Havana 2027-11-07 01:00-04:00 -> 00:00-05:00
        (
            "America/Havana",
            dt.date(2027, 11, 6),
            [ts(2027, 11, 6, h, 0, CUBA_DT) for h in (21, 22, 23)],
        ),
    ],
)
def test_window_to_2400_before_ambiguous_midnight(tz_name, day, expected):
    tz = timeutil.zone(tz_name)
    slots = timeutil.day_slots(day, [(21 * 60, 1440)], tz, 3600, 3600)
    assert all(timeutil.local_date_of(s, tz) == day for s in slots)
    assert slots == expected
    assert timeutil.wall_to_epoch(day, 1440, tz, is_end=True) == timeutil.day_bounds(day, tz)[1]


@pytest.mark.parametrize(
    "tz_name,day,expected",
    [
        # Azores 2027-03-28 00:00-01:00 -> 01:00+00:00: Saturday 23:00-01:00 .. 24:00 exists (00:00Z..01:00Z)
        ("Atlantic/Azores", dt.date(2027, 3, 27), [ts(2027, 3, 27, h, 0, AZOT) for h in (21, 22, 23)]),
        # Santiago 2027-09-05 00:00-04:00 -> 01:00-03:00
        ("America/Santiago", dt.date(2027, 9, 4), [ts(2027, 9, 4, h, 0, off(-4)) for h in (21, 22, 23)]),
    ],
)
def test_window_to_2400_before_skipped_midnight(tz_name, day, expected):
    tz = timeutil.zone(tz_name)
    assert timeutil.day_bounds(day, tz)[1] - timeutil.day_bounds(day, tz)[0] == 86400  # the day is 24 h
    slots = timeutil.day_slots(day, [(21 * 60, 1440)], tz, 3600, 3600)
    assert slots == expected


def test_covers_agrees_for_window_to_2400_before_ambiguous_midnight():
    day = dt.date(2027, 10, 30)  # Saturday; only a Saturday window
    tz = timeutil.zone("Atlantic/Azores")
    sched = _schedule(day, [(21 * 60, 1440)], 3600, [])
    slots = timeutil.day_slots(day, sched.windows_for(day.weekday()), tz, 3600, 3600, sched.closure_spans())
    for s in slots:
        assert sched.covers(s, s + 3600, "Atlantic/Azores"), timeutil.format_instant(s, "Atlantic/Azores")
