"""Buffers and daily limits under concurrency (API.md, "Buffers, daily limits, ..."): many holds at once through a
real 2-worker server on a real Redis; the claim scripts alone decide (a daily limit is never exceeded, no two
occupations [start - before, end + after] of one practitioner overlap)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from typing import Any

import httpx
import pytest

from tests.integration.test_practice_limits import limited
from tests.support.config import AUTH, WEEKDAYS
from tests.support.http import next_weekday, search, setup_practice
from tests.support.servers import Server

pytestmark = pytest.mark.integration


async def fire(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:
        return await asyncio.gather(*(c.post("/v1/holds", json=b) for b in bodies))


def test_50_concurrent_holds_of_one_day_leave_exactly_max_per_day_winners(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        ctx = setup_practice(c, durations=(15,), slot_step_minutes=5,
                             weekly=[{"day": d, "start": "07:00", "end": "20:00"} for d in WEEKDAYS])  # fmt: skip
        pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
        vt = limited(c, pid, 15, 2)
        day = next_weekday(2)
        slots = search(c, pid, vt, day)
        starts = [s["start"] for s in slots[::3]][:50]  # 50 distinct, non-overlapping slots of one day
        assert len(starts) == 50
        answers = asyncio.run(fire(server.url, [{"practitioner_id": dr, "visit_type_id": vt, "start": s}
                                                for s in starts]))  # fmt: skip
        won = [r.json() for r in answers if r.status_code == 201]
        assert len(won) == 2, sorted(r.status_code for r in answers)
        assert all(r.json()["code"] == "slot_unavailable" for r in answers if r.status_code != 201)
        assert search(c, pid, vt, day) == []  # the day is full for this visit type
        assert search(c, pid, vt, day + dt.timedelta(days=1))  # the next local date is not
        assert len(search(c, pid, plain, day)) > 0  # another visit type has no limit
        # a release lets exactly one more in
        assert c.delete(f"/v1/holds/{won[0]['id']}").status_code == 204
        taken = {w["start"] for w in won}
        rest = [s for s in starts if s not in taken]
        answers = asyncio.run(fire(server.url, [{"practitioner_id": dr, "visit_type_id": vt, "start": s}
                                                for s in rest]))  # fmt: skip
        assert sorted(r.status_code for r in answers).count(201) == 1


def test_concurrent_holds_with_buffers_never_overlap_their_occupations(server: Server) -> None:
    """60 contenders per round, visit types of several lengths and buffers, through a 2-worker server: the
    winners' occupations [start - before, end + after] never overlap (DESIGN.md, invariant 12)."""
    rng = random.Random(12)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        ctx = setup_practice(c, durations=(15,), slot_step_minutes=5,
                             weekly=[{"day": d, "start": "07:00", "end": "20:00"} for d in WEEKDAYS])  # fmt: skip
        pid, dr = ctx["practice_id"], ctx["practitioners"][0]
        rules = {ctx["visit_types"][15]: (15, 0, 0)}
        for minutes, before, after in ((30, 0, 10), (20, 15, 5), (45, 10, 20)):
            body = {"name": "v", "duration_minutes": minutes, "buffer_before_minutes": before,
                    "buffer_after_minutes": after}  # fmt: skip
            rules[c.post(f"/v1/practices/{pid}/visit-types", json=body).json()["id"]] = (minutes, before, after)
        day = next_weekday(3)
        offset = dt.datetime.fromisoformat(search(c, pid, ctx["visit_types"][15], day)[0]["start"]).utcoffset()
        assert offset is not None
        for _ in range(5):
            bodies = []
            for _ in range(60):
                vt = rng.choice(list(rules))
                minute = 9 * 60 + 5 * rng.randrange(0, 36)
                local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), dt.timezone(offset))
                bodies.append({"practitioner_id": dr, "visit_type_id": vt, "start": local.isoformat()})
            answers = asyncio.run(fire(server.url, bodies))
            won = [r.json() for r in answers if r.status_code == 201]
            assert won and all(r.json()["code"] == "slot_unavailable" for r in answers if r.status_code != 201)
            spans = []
            for w in won:
                _, before, after = rules[w["visit_type_id"]]
                start, end = dt.datetime.fromisoformat(w["start"]), dt.datetime.fromisoformat(w["end"])
                spans.append((start - dt.timedelta(minutes=before), end + dt.timedelta(minutes=after)))
            for (a0, a1), (b0, b1) in itertools.combinations(spans, 2):
                assert a1 <= b0 or b1 <= a0, (a0, a1, b0, b1)
            for w in won:  # the next round starts from a free morning
                assert c.delete(f"/v1/holds/{w['id']}").status_code == 204
