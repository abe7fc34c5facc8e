"""Reconciliation offers what Redis's loss freed to the waitlist as the freeing scripts would (issue 22, issue 23
item 6): the occupation of a lost hold or of an offer that expired meanwhile, buffers included, not the bare
visit: time that only the buffer held is offered too."""

from __future__ import annotations

import asyncio

import pytest
import redis as redis_sync

from persistence.db import make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from tests.support.databases import fresh_database
from tests.support.waitlist import World, run

pytestmark = pytest.mark.integration


def test_reconcile_offers_the_buffered_occupation_a_loss_freed(redis_db: str) -> None:
    db = make_engine(fresh_database("booking_reconcile_buffers"))
    sync = redis_sync.Redis.from_url(redis_db)

    async def body(w: World) -> None:
        day = w.tomorrow
        ten, ten30, two, two30 = (w.at(day, t) for t in ("10:00", "10:30", "14:00", "14:30"))
        await w.eng.change_visit_type(w.vts[30].id, {"buffer_after_minutes": 15})  # 30 minutes, then 15 of buffer
        appt = await w.book(ten)
        await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(two))  # a hold Redis will lose: 14:00-14:45
        a = await w.join(pr=0, from_time="10:00", to_time="10:30")
        await w.eng.cancel(appt)  # 10:00 offered to a: its hold occupies 10:00-10:45
        assert (await w.entry(a.record.id)).offer is not None
        # 15-minute visits in the buffers only: waiting while the hold and the offer occupy them
        late = await w.join(minutes=15, pr=0, from_time="14:30", to_time="14:45")
        after_offer = await w.join(minutes=15, pr=0, from_time="10:30", to_time="10:45")
        assert (await w.entry(late.record.id)).status == "waiting"
        assert (await w.entry(after_offer.record.id)).status == "waiting"
        await asyncio.to_thread(Persister(sync, db, consumer="t").drain)
        sync.flushdb()
        w.clock.now += 1000  # a's offer (900 s) and the hold (300 s) expired while Redis was gone
        await reconcile(w.eng, sync, db, out=lambda _: None)
        got = await w.entry(late.record.id)
        assert got.offer is not None and got.offer.start == two30, got  # the lost hold's buffer
        got = await w.entry(after_offer.record.id)
        assert got.offer is not None and got.offer.start == ten30, got  # the expired offer's buffer

    try:
        run(redis_db, body)
    finally:
        sync.close()
        db.dispose()
