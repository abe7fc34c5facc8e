"""/metrics shows the waitlist (issue 14 item 6): its length (live entries per the practices' queues) and the
counters of T:wl:stats (joined, offers, accepted, declined, lapsed, left), summed over the practices."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from engine import keys
from tests.support import waitlist_events as wl
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import setup_practice

pytestmark = pytest.mark.integration


def scrape(c: TestClient[Any]) -> dict[str, float]:
    out = {}
    for line in c.get("/metrics").text.splitlines():
        m = re.match(r"^(booking_waitlist[a-z_]*(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_metrics_sum_the_waitlists_of_every_practice(redis_db: str) -> None:
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    app = create_app(settings_for(redis_db, database_url=fresh_database("booking_wl_metrics")))
    with TestClient(app) as c:
        c.headers.update(AUTH)
        empty = scrape(c)
        assert empty["booking_waitlist_entries"] == 0
        assert empty['booking_waitlist_events_total{event="offers"}'] == 0
        now = int(time.time() * 1000)
        spans = [[now // 1000, now // 1000 + 86400]]
        stats = [
            {"joined": 5, "offers": 7, "accepted": 2, "declined": 3, "lapsed": 1, "left": 1},
            {"joined": 2, "offers": 1, "lapsed": 1},  # a practice whose counters are partly absent
        ]
        for counts in stats:
            ctx = setup_practice(c, durations=(30,))
            pid, vt = ctx["practice_id"], ctx["visit_types"][30]
            for order in range(1, counts["joined"] + 1):
                status = "left" if order == 1 else "waiting"
                wl.store(r, wl.entry(pid, vt, order, spans, now, status=status))
            r.hset(keys.waitlist_stats(pid), mapping=counts)  # type: ignore[arg-type]
        got = scrape(c)
    r.close()
    assert got["booking_waitlist_entries"] == (5 - 1) + (2 - 1)  # live entries only: the left ones are off the queue
    want = {"joined": 7, "offers": 8, "accepted": 2, "declined": 3, "lapsed": 2, "left": 1}
    for event, total in want.items():
        assert got[f'booking_waitlist_events_total{{event="{event}"}}'] == total, event
