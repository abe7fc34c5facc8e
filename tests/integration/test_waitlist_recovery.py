"""The durable side against the real waitlist scripts (engine/waitlist.py, lua/waitlist_*.lua): what they
append is stored exactly as Redis holds it, and after Redis lost its data reconciliation brings back the queue,
the join order and a live offer that the scripts then accept as their own."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import redis as redis_sync
from sqlalchemy import select

from engine import keys
from engine.model import WaitlistRecord
from persistence import waitlist_rows
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from persistence.tables import waitlist_entries
from tests.support.databases import fresh_database
from tests.support.waitlist import World, run

pytestmark = pytest.mark.integration


def redis_state(r: Any, pid: str) -> tuple[dict[str, WaitlistRecord], list[tuple[str, float]]]:
    entries = {
        k.decode(): msgspec.json.decode(v, type=WaitlistRecord)
        for k, v in r.hgetall(keys.waitlist_entries(pid)).items()
    }
    return entries, [(m.decode(), s) for m, s in r.zrange(keys.waitlist_queue(pid), 0, -1, withscores=True)]


def stored(db: Any) -> dict[str, WaitlistRecord]:
    with db.connect() as c:
        return {m["id"]: waitlist_rows.record(m) for m in c.execute(select(waitlist_entries)).mappings()}


def test_what_the_scripts_write_is_stored_exactly_and_comes_back_after_redis_lost_it(redis_db: str) -> None:
    db = make_engine(fresh_database("booking_wl_recovery"))
    sync = redis_sync.Redis.from_url(redis_db)

    async def body(w: World) -> None:
        day = w.tomorrow
        ten, eleven = w.at(day, "10:00"), w.at(day, "11:00")
        appts = [await w.book(ten), await w.book(eleven)]
        a, b = await w.join(pr=0), await w.join()
        c = await w.join(from_time="10:00", to_time="12:00")
        await w.eng.cancel(appts[0])  # ten: offered to a
        await w.eng.decline_offer(a.record.id)  # then to b
        await w.eng.leave_waitlist(c.record.id)
        await w.eng.cancel(appts[1])  # eleven: offered to a (b holds ten)
        d = await w.join(minutes=15)
        got_b = await w.entry(b.record.id)
        assert got_b.offer is not None and got_b.offer.start == ten
        before = redis_state(sync, w.pid)
        await asyncio.to_thread(Persister(sync, db, consumer="t").drain)
        assert stored(db) == before[0]  # every entry, exactly as Redis holds it
        assert {e.status for e in before[0].values()} == {"offered", "left", "waiting"}

        sync.flushdb()
        said: list[str] = []
        await reconcile(w.eng, sync, db, out=said.append)
        assert redis_state(sync, w.pid) == before  # the entries, the queue and its order
        assert ten not in await w.free(day) and eleven not in await w.free(day)  # both offers held again
        hold = await w.eng.get_hold(got_b.offer.hold_id)
        assert (hold.state, hold.start) == ("held", ten)
        appt, _ = await w.eng.accept_offer(b.record.id)  # the scripts take the restored offer as theirs
        assert appt.start == ten and (await w.entry(b.record.id)).status == "booked"
        e = await w.join()
        assert e.record.order > max(x.order for x in before[0].values())  # later joins queue after them
        await w.eng.decline_offer(a.record.id)  # eleven: to the earliest entry it fits, d (15 minutes of it)
        got_d = await w.entry(d.record.id)
        assert got_d.offer is not None and (got_d.offer.start, got_d.offer.end) == (eleven, eleven + 900)
        await asyncio.to_thread(Persister(sync, db, consumer="t").drain)
        assert stored(db) == redis_state(sync, w.pid)[0]
        assert any("with its offer" in line for line in said)

    try:
        run(redis_db, body)
    finally:
        sync.close()
        db.dispose()


def test_after_redis_lost_its_data_free_time_is_offered_to_the_waitlist_and_counters_rebuilt(redis_db: str) -> None:
    """Issue 22 ("after booking reconcile"): a lost hold's interval, and an offer that expired while Redis was
    gone, are offered to the waiting entries by reconciliation, not left free to everyone; T:wl:stats is raised
    back to the durable audit's counts."""
    db = make_engine(fresh_database("booking_wl_recovery2"))
    sync = redis_sync.Redis.from_url(redis_db)

    async def body(w: World) -> None:
        day = w.tomorrow
        ten, two = w.at(day, "10:00"), w.at(day, "14:00")
        appt = await w.book(ten)
        await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(two))  # a hold that Redis will lose
        a = await w.join(pr=0, from_time="09:00", to_time="12:00")
        b = await w.join(pr=0, from_time="14:00", to_time="15:00")
        c = await w.join(pr=0, from_time="09:00", to_time="12:00")
        await w.eng.cancel(appt)  # ten offered to a
        assert (await w.entry(a.record.id)).offer is not None
        await asyncio.to_thread(Persister(sync, db, consumer="t").drain)
        stats = sync.hgetall(keys.waitlist_stats(w.pid))
        sync.flushdb()
        w.clock.now += 1000  # a's offer (900 s) and the hold (300 s) expired while Redis was gone: the sweeper
        # would have offered both intervals to the waitlist first, reconciliation does
        await reconcile(w.eng, sync, db, out=lambda _: None)
        got_a, got_b, got_c = [await w.entry(e.record.id) for e in (a, b, c)]
        assert got_a.status == "waiting" and got_a.offer is None  # it had ten: never again
        assert got_c.offer is not None and got_c.offer.start == ten  # the expired offer's interval: to c, not all
        assert ten not in await w.free(day)
        restored = sync.hgetall(keys.waitlist_stats(w.pid))
        assert (int(stats[b"joined"]), int(stats[b"offers"])) == (3, 1)
        assert got_b.offer is not None and got_b.offer.start == two  # the lost hold's interval: to b
        assert (int(restored[b"joined"]), int(restored[b"offers"])) == (3, 3)  # 1 from the audit, then c's and b's

    try:
        run(redis_db, body)
    finally:
        sync.close()
        db.dispose()
