"""The slot list of an availability answer is rendered from pre-encoded pieces (api/render.py ``_slots``): it must
be byte for byte what msgspec encodes for the SlotOut objects, in every zone, across DST changes, for any id."""

from __future__ import annotations

import random

import msgspec

from api import render
from api.schemas import SlotOut
from engine import timeutil

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "Pacific/Chatham")
SPRING_2027_EU = 1806886800  # 2027-03-28 01:00 UTC, the EU's change to summer time


def expected(pids: list[str], dur: int, tz: str, packed: list[int]) -> bytes:
    n = len(pids)
    slots = [
        SlotOut(pids[v % n], timeutil.format_instant(v // n, tz), timeutil.format_instant(v // n + dur, tz))
        for v in packed
    ]
    return msgspec.json.encode(slots)[1:-1]


def test_rendered_slots_are_what_msgspec_encodes() -> None:
    rng = random.Random(13)
    odd_ids = ['p"quoted"', "p\\back", "pé", "p\u2028line", "p" + "x" * 40]
    for _ in range(300):
        tz = rng.choice(ZONES)
        pids = [rng.choice(odd_ids) if rng.random() < 0.2 else f"p{rng.randrange(10**6):06d}"
                for _ in range(rng.randint(1, 6))]  # fmt: skip
        dur = rng.choice((600, 900, 1800, 3600, 5400))
        around = SPRING_2027_EU + rng.choice((0, 182 * 86400)) + rng.randrange(-2 * 86400, 2 * 86400)
        starts = sorted({around + 900 * rng.randrange(-100, 100) for _ in range(rng.randint(0, 40))})
        packed = sorted(s * len(pids) + rng.randrange(len(pids)) for s in starts)
        assert render._slots(pids, dur, tz, packed) == expected(pids, dur, tz, packed)


def test_a_zone_whose_map_is_full_starts_again_and_still_renders_right(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(render, "_INSTANTS_MAX", 5)
    pids, tz = ["p1", "p2"], "Europe/Berlin"
    packed = [(SPRING_2027_EU + 900 * k) * 2 + k % 2 for k in range(20)]
    for _ in range(3):
        assert render._slots(pids, 1800, tz, packed) == expected(pids, 1800, tz, packed)
    assert len(render._INSTANTS[tz]) <= 5 + 40
