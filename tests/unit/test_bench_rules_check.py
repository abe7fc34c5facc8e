"""The practice-rules invariant check of `booking bench` (benchmarks/rules.py::violations) finds each way claims can
break the practice's rules, on fabricated claims (no server): overlapping occupations of one practitioner (buffers
included), overlapping claims of one resource (whoever the practitioner), more than ``max_per_day`` claims of one
visit type on one local date (DST days by local date); and passes claims that keep them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("httptools", reason="the benchmark suite needs the `bench` extra")

from benchmarks.rules import Claim, RoomClaim, Rule, at_limit, room_violations, violations

PARIS = ZoneInfo("Europe/Paris")
ROOM = "p.room1"
SURGERY, CONSULT, SCAN = "p.v1", "p.v2", "p.v3"
RULES = {
    SURGERY: Rule(before_s=300, after_s=600, most=2, resources=(ROOM,)),
    CONSULT: Rule(after_s=300, most=3),
    SCAN: Rule(resources=(ROOM,)),
}


def at(day: dt.date, hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return int(dt.datetime(day.year, day.month, day.day, h, m, tzinfo=PARIS).timestamp())


def claim(ident: str, pr: str, vt: str, start: int, minutes: int) -> Claim:
    rule = RULES[vt]
    end = start + minutes * 60
    return Claim(ident, pr, vt, start, end, start - rule.before_s, end + rule.after_s)


DAY = dt.date(2027, 3, 3)


def test_claims_that_keep_the_rules_pass() -> None:
    claims = [
        claim("a", "dr1", SURGERY, at(DAY, "09:00"), 30),  # occupies 08:55-09:40, the room 09:00-09:30
        claim("b", "dr1", CONSULT, at(DAY, "09:40"), 15),  # starts as the buffer ends
        claim("c", "dr2", SCAN, at(DAY, "09:30"), 20),  # the room as the surgery leaves it
        claim("d", "dr1", SURGERY, at(DAY, "14:00"), 30),  # the second surgery of the day: the limit, not over it
        claim("e", "dr2", SURGERY, at(DAY, "15:00"), 30),  # another practitioner's own count
    ]
    assert violations(claims, RULES, PARIS) == []
    assert at_limit(claims, RULES, PARIS) == 1  # dr1's surgeries: the report says the run reached a limit


def test_an_overlap_inside_a_buffer_is_found() -> None:
    claims = [claim("a", "dr1", SURGERY, at(DAY, "09:00"), 30), claim("b", "dr1", CONSULT, at(DAY, "09:35"), 15)]
    found = violations(claims, RULES, PARIS)
    assert len(found) == 1 and "practitioner dr1" in found[0] and "a " in found[0] and "b " in found[0], found
    # the same visits of two practitioners: no overlap of anyone's occupation
    assert violations([claims[0], claim("b", "dr2", CONSULT, at(DAY, "09:35"), 15)], RULES, PARIS) == []


def test_a_long_claim_overlapping_a_later_one_past_a_short_one_is_found() -> None:
    claims = [
        claim("long", "dr1", SCAN, at(DAY, "09:00"), 120),
        claim("short", "dr1", CONSULT, at(DAY, "09:10"), 15),
        claim("later", "dr1", CONSULT, at(DAY, "10:30"), 15),
    ]
    found = violations(claims, RULES, PARIS)
    assert len(found) == 2 and "short" in found[0] and "later" in found[1], found
    assert all(x.startswith("practitioner dr1: long ") for x in found), found


def test_two_practitioners_in_one_room_at_once_are_found() -> None:
    claims = [claim("a", "dr1", SURGERY, at(DAY, "09:00"), 30), claim("b", "dr2", SCAN, at(DAY, "09:20"), 20)]
    found = violations(claims, RULES, PARIS)
    assert found == [f"resource {ROOM}: a [{at(DAY, '09:00')},{at(DAY, '09:30')}) overlaps b "
                     f"[{at(DAY, '09:20')},{at(DAY, '09:40')})"]  # fmt: skip
    # a room claim is the visit itself: the surgery's buffers do not hold the room
    assert violations([claims[0], claim("b", "dr2", SCAN, at(DAY, "09:30"), 20)], RULES, PARIS) == []


def test_a_daily_limit_exceeded_is_found_by_local_date() -> None:
    three = [claim(x, "dr1", SURGERY, at(DAY, t), 30) for x, t in (("a", "08:00"), ("b", "10:00"), ("c", "12:00"))]
    found = violations(three, RULES, PARIS)
    assert found == [f"practitioner dr1, visit type {SURGERY}, {DAY}: 3 claims, max_per_day 2"]
    # other visit types, practitioners and dates count on their own
    spread = [
        *three[:2],
        claim("c", "dr2", SURGERY, at(DAY, "12:00"), 30),
        claim("d", "dr1", CONSULT, at(DAY, "12:00"), 15),
    ]
    assert violations(spread, RULES, PARIS) == []


@pytest.mark.parametrize("day", [dt.date(2027, 3, 28), dt.date(2027, 10, 31)], ids=["23-hour", "25-hour"])
def test_dst_days_count_by_local_date(day: dt.date) -> None:
    """00:10 local is the previous UTC day in Paris: two claims late on the DST day and one just after its
    midnight are two on one local date (within the limit), three on one UTC date."""
    nxt = day + dt.timedelta(days=1)
    claims = [
        claim("a", "dr1", SURGERY, at(day, "22:00"), 30),
        claim("b", "dr1", SURGERY, at(day, "23:00"), 30),
        claim("c", "dr1", SURGERY, at(nxt, "00:10"), 30),
    ]
    assert dt.datetime.fromtimestamp(claims[2].start, dt.UTC).date() == day  # the test means what it says
    assert violations(claims, RULES, PARIS) == []
    extra = claim("d", "dr1", SURGERY, at(day, "01:00"), 30)
    assert violations([*claims, extra], RULES, PARIS) == [
        f"practitioner dr1, visit type {SURGERY}, {day}: 3 claims, max_per_day 2"
    ]


def test_the_room_claims_zset_is_checked_against_the_claims_that_need_the_room() -> None:
    a, b = claim("a", "dr1", SURGERY, at(DAY, "09:00"), 30), claim("b", "dr2", SCAN, at(DAY, "09:30"), 20)
    c = claim("c", "dr1", CONSULT, at(DAY, "10:00"), 15)  # needs no room
    rooms = [RoomClaim(ROOM, "a", a.start, a.end), RoomClaim(ROOM, "b", b.start, b.end)]
    assert room_violations([a, b, c], rooms, RULES) == []
    # two room claims of one resource overlapping (whatever the claims say)
    bad = room_violations([a, b], [rooms[0], RoomClaim(ROOM, "b", b.start - 600, b.end)], RULES)
    assert len(bad) == 2 and bad[0].startswith(f"room claims of resource {ROOM}: a "), bad
    assert "claim b " in bad[1] and "needs resource" in bad[1], bad
    # a claim needing the room that holds no claim of it
    bad = room_violations([a, b], rooms[:1], RULES)
    assert len(bad) == 1 and bad[0].startswith("claim b ") and "None" in bad[0], bad
    # a room claim that no live claim owns (its hold released, its member left behind)
    bad = room_violations([a], rooms, RULES)
    assert bad == [f"resource {ROOM}: claim of b owned by no live claim"], bad
