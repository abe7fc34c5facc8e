"""A booked series does not stay in Redis forever (issue 23 item 4, issue 12 item 9): it has no TTL (its
occurrences live on), so the retention tidy (persistence/retention.py) takes it out once every occurrence's
appointment left Redis (each ended more than the retention period ago and the database held it) and the database
holds the series (lua/series_tidy.lua); it is then read from the database with the same body, and reconciliation
does not put it back."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from engine import keys
from persistence.retention import AppointmentTidy
from tests.integration import test_practice_series
from tests.integration.test_persistence import run_reconcile
from tests.integration.test_practice_series import as_patient
from tests.integration.test_practice_series_cancel import book_series, practice
from tests.support.clock import Clock

pytestmark = pytest.mark.integration
world = test_practice_series.world
DAY_S = 86400


def test_a_booked_series_leaves_redis_after_its_occurrences_and_reads_the_same(world: dict[str, Any]) -> None:
    c, r, p, db = world["client"], world["redis"], world["persister"], world["db"]
    ctx = practice(c)
    b = book_series(c, ctx)
    pid, sid, token, appts = ctx["practice_id"], b["series_id"], b["manage_token"], b["appointments"]
    assert as_patient(c, token, "POST", f"/v1/appointments/{appts[1]['id']}/cancel", json={}).status_code == 200
    key = keys.series(pid, sid)
    assert r.ttl(key) == -1  # booked: no TTL of its own, the tidy bounds it
    last_end = max(int(dt.datetime.fromisoformat(a["end"]).timestamp()) for a in appts)
    later = last_end + 91 * DAY_S
    tidy = AppointmentTidy(r, db, 90)
    assert tidy.run().series_removed == 0  # nothing ended yet
    assert tidy.run(now_s=later).series_removed == 0  # ended, but the database holds nothing yet
    assert r.exists(key)
    p.drain()
    c.app.state.engine.rt.clock = Clock(later)  # the API reads as it would then
    before = c.get(f"/v1/series/{sid}").json()
    # one occurrence changed after the database stored it (a late cancel): it stays, so the series stays
    assert as_patient(c, token, "POST", f"/v1/appointments/{appts[5]['id']}/cancel", json={}).status_code == 200
    c.app.state.engine.rt.clock = Clock(later)
    report = tidy.run(now_s=later)
    assert (report.removed, report.series_removed) == (5, 0)
    assert r.exists(key) and r.exists(keys.appointment(pid, appts[5]["id"]))
    p.drain()
    report = tidy.run(now_s=later)
    assert (report.removed, report.series_removed) == (1, 1)
    assert not r.exists(key)
    # read from the database: the same body for staff and for the patient's token
    after = c.get(f"/v1/series/{sid}")
    assert after.status_code == 200, after.text
    before["appointments"][5] = {**before["appointments"][5], "status": "cancelled", "version": 2}
    assert after.json() == before
    mine = as_patient(c, token, "GET", f"/v1/series/{sid}")
    assert mine.status_code == 200 and mine.json() == before
    assert as_patient(c, "x" * 43, "GET", f"/v1/series/{sid}").status_code == 403
    done = as_patient(c, token, "POST", f"/v1/series/{sid}/cancel", json={})  # nothing ahead: unchanged
    assert done.status_code == 200 and done.json() == before, done.text
    # reconciliation does not put back a series whose occurrences all ended long ago (their rows moved into the
    # past here: reconciliation reads the real clock), nor those appointments
    with db.begin() as conn:
        conn.exec_driver_sql(
            "update appointments set start_at = start_at - interval '400 days', end_at = end_at - interval '400 days'"
            " where id = any(%(ids)s)",
            {"ids": [a["id"] for a in appts]},
        )
    said: list[str] = []
    asyncio.run(run_reconcile(world["redis_url"], db, said))
    assert not r.exists(key) and not any(sid in line for line in said), said
