"""The benchmark's waitlist invariant check (benchmarks/waitlist.py::OfferCheck) catches each way an offer can
break invariant 11, on hand-made streams (no server): it must not pass what the waitlist scripts must never do."""

from __future__ import annotations

from typing import Any

import msgspec

from benchmarks.waitlist import OfferCheck
from engine import events as ev
from tests.support import waitlist_events as wl

PID, VT, PR = "a" * 16, "a" * 16 + ".v1", "a" * 16 + ".r1"
DAY = [[1_800_000_000, 1_800_086_400]]
S = 1_800_036_000  # 10:00 UTC of that day


def hold(n: int) -> str:
    return f"{PR}.h{'x' * 21}{n}"


def joined(order: int, **kw: Any) -> Any:
    return wl.entry(PID, VT, order, DAY, 1_000 + order, **kw)


def offer(r: Any, n: int, start: int = S, at: int = 2_000) -> ev.Event:
    o = wl.offered(r, hold(n), PR, start, start + 1800, at + 900_000, at)
    return wl.event("waitlist_offer", o, at, expires_ms=at + 900_000, cause="cancel")


def _booked(start: int, at: int) -> ev.Event:
    raw = {"v": 1, "type": "book", "seq": 1, "at": at, "actor": "t", "practice_id": PID, "practitioner_id": PR,
           "hold_id": hold(99), "appointment_id": f"{PID}.a{'z' * 16}",
           "detail": {"visit_type_id": VT, "start": start, "end": start + 1800, "version": 1, "patient_id": "p"},
           "data": {"id": f"{PID}.a{'z' * 16}", "status": "booked", "version": 1, "practice_id": PID,
                    "practitioner_id": PR, "visit_type_id": VT, "start": start, "end": start + 1800,
                    "patient": {"name": "A", "email": "a@b.c"}, "manage_hash": "h", "hold_id": hold(99)}}  # fmt: skip
    return msgspec.convert(raw, ev.Event)


def run(*events: ev.Event) -> OfferCheck:
    check = OfferCheck()
    for e in events:
        check.feed(e)
    return check


def test_fair_exclusive_offers_pass() -> None:
    a, b = joined(1), joined(2)
    check = run(wl.event("waitlist_join", a, 1), wl.event("waitlist_join", b, 2), offer(a, 1), offer(b, 2, S + 3600))
    assert (check.offers, check.violations, check.unverified) == (2, [], 0)


def test_an_offer_that_skips_an_earlier_waiting_entry_is_unfair() -> None:
    a, b = joined(1), joined(2)
    check = run(wl.event("waitlist_join", a, 1), wl.event("waitlist_join", b, 2), offer(b, 1))
    assert len(check.violations) == 1 and "joined before" in check.violations[0]
    # not unfair when the earlier one had that interval already, or wants another practitioner
    had = joined(1, had=[f"{PR}|{S}|{S + 1800}"])
    other = joined(1, practitioner_id=PID + ".r2")
    for first in (had, other):
        assert run(wl.event("waitlist_join", first, 1), wl.event("waitlist_join", b, 2), offer(b, 1)).violations == []


def test_an_entry_with_two_offers_and_an_interval_offered_twice_are_caught() -> None:
    a, b = joined(1), joined(2)
    first = offer(a, 1)
    second = offer(first.data, 2, S + 3600)  # a offered again while it holds the first offer
    check = run(wl.event("waitlist_join", a, 1), first, second)
    assert any("two offers" in v for v in check.violations)
    twice = run(wl.event("waitlist_join", a, 1), wl.event("waitlist_join", b, 2), offer(a, 1), offer(b, 2))
    assert any("overlaps the live claim" in v for v in twice.violations)  # one interval held by two entries


def test_an_offer_over_a_booking_is_a_double_booking() -> None:
    a = joined(1)
    check = run(wl.event("waitlist_join", a, 1), _booked(S + 900, 1_500), offer(a, 1))
    assert any("overlaps the live claim" in v for v in check.violations)
    # an expired hold does not count
    hold_placed = msgspec.convert(
        {"v": 1, "type": "hold", "seq": 1, "at": 10, "actor": "t", "practice_id": PID, "practitioner_id": PR,
         "hold_id": hold(50), "detail": {"visit_type_id": VT, "start": S, "end": S + 1800, "expires_ms": 1_900}},
        ev.Event,
    )  # fmt: skip
    assert run(wl.event("waitlist_join", a, 1), hold_placed, offer(a, 1)).violations == []


def test_a_cancelled_booking_frees_its_interval_for_the_offer() -> None:
    a = joined(1)
    b = _booked(S, 1_500)
    cancel = msgspec.convert(
        {"v": 1, "type": "cancel", "seq": 2, "at": 1_600, "actor": "t", "practice_id": PID, "practitioner_id": PR,
         "appointment_id": b.appointment_id,
         "detail": {"version": 2, "start": S, "end": S + 1800, "has_reason": False},
         "data": {"id": b.appointment_id, "status": "cancelled", "version": 2, "cancel_reason": ""}},
        ev.Event,
    )  # fmt: skip
    assert run(wl.event("waitlist_join", a, 1), b, cancel, offer(a, 1)).violations == []
