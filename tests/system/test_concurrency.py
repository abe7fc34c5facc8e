"""No double booking under concurrency, counted against a real Redis through a real 2-worker server."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from typing import Any

import httpx
import pytest

from tests.support.config import AUTH
from tests.support.http import next_weekday, search, setup_practice
from tests.support.servers import Server

pytestmark = pytest.mark.integration


def parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts)


async def fire(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:
        return await asyncio.gather(*(c.post("/v1/holds", json=b) for b in bodies))


def test_200_concurrent_holds_on_one_slot_have_exactly_one_winner(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        ctx = setup_practice(c)
        pr, vt = ctx["practitioners"][0], ctx["visit_types"][30]
        day = next_weekday(2)
        slot = search(c, ctx["practice_id"], vt, day)[3]
        body = {"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]}
        answers = asyncio.run(fire(server.url, [body] * 200))
        statuses = sorted(r.status_code for r in answers)
        assert statuses.count(201) == 1, statuses
        losers = [r for r in answers if r.status_code != 201]
        assert len(losers) == 199
        assert all(r.status_code == 409 and r.json()["code"] == "slot_unavailable" for r in losers)
        assert slot["start"] not in [s["start"] for s in search(c, ctx["practice_id"], vt, day)]


def test_overlapping_holds_of_mixed_lengths_never_overlap(server: Server) -> None:
    rng = random.Random(7)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
        ctx = setup_practice(
            c,
            durations=(15, 30, 45),
            weekly=[
                {"day": d, "start": "08:00", "end": "18:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            ],
        )
        pr = ctx["practitioners"][0]
        base_day = next_weekday(0, after_days=3)
        for rnd in range(20):
            day = base_day + dt.timedelta(days=rnd)
            # 60 contenders on a 2-hour stretch: every start on the 15-minute grid, every length
            offset = parse(search(c, ctx["practice_id"], ctx["visit_types"][15], day)[0]["start"]).utcoffset()
            assert offset is not None
            bodies = []
            for _ in range(60):
                minutes = rng.choice([15, 30, 45])
                start_min = 9 * 60 + 15 * rng.randrange(0, 8)
                local = dt.datetime.combine(day, dt.time(start_min // 60, start_min % 60), dt.timezone(offset))
                bodies.append(
                    {"practitioner_id": pr, "visit_type_id": ctx["visit_types"][minutes], "start": local.isoformat()}
                )
            answers = asyncio.run(fire(server.url, bodies))
            won = [r.json() for r in answers if r.status_code == 201]
            lost = [r for r in answers if r.status_code != 201]
            assert won, "somebody must win each round"
            assert all(r.status_code == 409 and r.json()["code"] == "slot_unavailable" for r in lost)
            for a, b in itertools.combinations(won, 2):
                assert parse(a["end"]) <= parse(b["start"]) or parse(b["end"]) <= parse(a["start"]), (a, b)
            # and each winner's interval is no longer offered to anyone
            free15 = {s["start"] for s in search(c, ctx["practice_id"], ctx["visit_types"][15], day)}
            for w in won:
                assert w["start"] not in free15
