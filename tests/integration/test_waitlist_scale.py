"""The waitlist stays bounded (issue 22 item 2), on the real Redis: a freeing change visits only the entries its
freed interval can match (the index, docs/waitlist.md), so a hold release with 50,000 waiting entries that do not
match costs Redis what it costs with none (measured by Redis itself: SLOWLOG with slowlog-log-slower-than 0);
caps on live entries per practice and per client; windows of at most 90 dates; position read without a scan;
the index kept exact through offers, declines, lapses, leaves, accepts and the sweeper's drop of ended entries."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from pathlib import Path

import pytest

from engine import errors, ids, keys, limits
from engine import events as ev
from engine.codec import encoder
from engine.model import SYSTEM, Patient, WaitlistRecord, WaitlistRequest
from engine.scripts.registry import source
from engine.scripts.waitlist import NO_CAPS, index_members, join_call, waiting_member
from tests.support.processes import Procs
from tests.support.servers import RedisServer
from tests.support.waitlist import World, run

pytestmark = pytest.mark.integration
ENTRIES = 50_000


def _record(w: World, order_hint: int, vt: str, pr: str | None, day: dt.date) -> tuple[str, bytes]:
    entry_id = ids.new_waitlist_entry_id(w.pid)
    spans = [[w.at(day, "00:00"), w.at(day + dt.timedelta(days=1), "00:00")]]
    now = int(w.clock.now * 1000)
    rec = WaitlistRecord(
        id=entry_id, practice_id=w.pid, visit_type_id=vt, practitioner_id=pr, from_date=day.isoformat(),
        to_date=day.isoformat(), spans=spans, order=order_hint, status="waiting", version=0, joined_ms=now,
        updated_ms=now, manage_hash="x" * 64, patient=Patient(name=f"P{order_hint}", email="p@example.org"),
    )  # fmt: skip
    return entry_id, encoder.encode(rec)


async def _join_many(w: World, specs: list[tuple[str, str | None, dt.date]]) -> None:
    """Entries straight through the join script, pipelined (as the API would store them, without its checks)."""
    sha = await w.r.script_load(source("waitlist_join"))
    for at in range(0, len(specs), 2000):
        async with w.r.pipeline(transaction=False) as pipe:
            for i, (vt, pr, day) in enumerate(specs[at : at + 2000]):
                entry_id, raw = _record(w, at + i, vt, pr, day)
                call = join_call(now_ms=int(w.clock.now * 1000), practice_id=w.pid, entry_id=entry_id, record=raw,
                                 ctx=SYSTEM, caps=NO_CAPS)  # fmt: skip
                pipe.evalsha(sha, len(call.keys), *call.keys, *call.args)
            await pipe.execute()


def test_a_release_with_50000_waiting_entries_that_do_not_match_costs_under_2_ms_of_redis(
    procs: Procs, tmp_path: Path
) -> None:
    # a Redis server of the test's own: SLOWLOG (and its threshold) is the whole server's, and the other xdist
    # worker's tests run scripts, the release among them, on the shared test Redis meanwhile
    own = RedisServer(procs, tmp_path / "redis", aof=False)
    own.start()

    async def body(w: World) -> None:
        day, vt30, vt15 = w.tomorrow, w.vts[30].id, w.vts[15].id
        pr0, pr1 = w.prs[0].id, w.prs[1].id
        later = [day + dt.timedelta(days=2 + i % 7) for i in range(ENTRIES)]
        # 40,000 on other dates (any practitioner, both visit types), 10,000 on that date for the other practitioner
        specs = [(vt30 if i % 2 else vt15, None if i % 3 else pr0, later[i]) for i in range(40_000)]
        specs += [(vt30 if i % 2 else vt15, pr1, day) for i in range(ENTRIES - 40_000)]
        await _join_many(w, specs)
        assert await w.r.zcard(keys.waitlist_queue(w.pid)) == ENTRIES
        ten = w.at(day, "10:00")
        hold, _ = await w.eng.hold(pr0, vt30, w.instant(ten))
        last = await w.join(minutes=30, pr=0)  # the only entry that matches, joined after all of them
        release_sha = hashlib.sha1(source("release").encode()).hexdigest()
        # loaded now, as on a server that has run it before: the measured call is one EVALSHA, not NOSCRIPT + retry
        assert await w.r.script_load(source("release")) == release_sha
        before = await w.r.config_get("slowlog-log-slower-than")
        await w.r.config_set("slowlog-log-slower-than", 0)
        try:
            await w.r.slowlog_reset()
            assert await w.eng.release_hold(hold.id) == "released"
            log = await w.r.slowlog_get(128)
        finally:
            await w.r.config_set("slowlog-log-slower-than", before["slowlog-log-slower-than"])
        runs = [e for e in log if e["command"].startswith(f"EVALSHA {release_sha}".encode())]
        assert len(runs) == 1, [e["command"][:40] for e in log]
        assert runs[0]["duration"] < 2000, f"the release took {runs[0]['duration']} µs of Redis"
        got = await w.entry(last.record.id)  # found through the index past the 50,000 others
        assert got.offer is not None and got.offer.start == ten
        assert got.position == 0 or got.status == "offered"
        offers = [e for e in await w.events() if isinstance(e, ev.WaitlistOffered)]
        assert [o.data.id for o in offers] == [last.record.id]

    run(own.url, body, caps=(ENTRIES + 1, 5))  # the practice's cap raised so that one more may join through the engine


def test_position_counts_earlier_waiting_entries_of_the_visit_type_without_a_scan(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        appt = await w.book(ten)
        a, other, b, c = (
            await w.join(),
            await w.join(minutes=15, from_time="14:00", to_time="18:00"),
            await w.join(),
            await w.join(),
        )
        assert [(await w.entry(e.record.id)).position for e in (a, other, b, c)] == [0, 0, 1, 2]
        await w.eng.cancel(appt)  # a is offered: no longer waiting, so b and c move up
        assert (await w.entry(a.record.id)).status == "offered"
        assert [(await w.entry(e.record.id)).position for e in (a, b, c)] == [0, 0, 1]
        await w.eng.decline_offer(a.record.id)  # a waits again, at its place; b got the offer
        assert (await w.entry(b.record.id)).status == "offered"
        assert [(await w.entry(e.record.id)).position for e in (a, c)] == [0, 1]
        await w.eng.leave_waitlist(a.record.id)
        assert (await w.entry(c.record.id)).position == 0
        # what position reads is the waiting set: exactly the waiting entries, one member each
        members = await w.r.zrange(keys.waitlist_waiting(w.pid), 0, -1)
        recs = {e.record.id: (await w.entry(e.record.id)).record for e in (other, c)}
        assert sorted(members) == sorted(waiting_member(r).encode() for r in recs.values())

    run(redis_db, body)


def test_the_index_holds_exactly_the_live_entries_through_every_change(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        ten, eleven = w.at(day, "10:00"), w.at(day, "11:00")
        a1, a2 = await w.book(ten), await w.book(eleven)
        long = await w.join(from_date=day, to_date=day + dt.timedelta(days=5), from_time="09:00", to_time="12:00")
        mine = await w.join(pr=1)
        short = await w.join(minutes=15, day=day + dt.timedelta(days=1))
        leaving = await w.join()

        async def index() -> set[bytes]:
            return set(await w.r.zrange(keys.waitlist_index(w.pid), 0, -1))

        async def members_of(*entries: object) -> set[bytes]:
            out: set[bytes] = set()
            for e in entries:
                rec = (await w.entry(e.record.id)).record  # type: ignore[attr-defined]
                out |= {m.encode() for m in index_members(rec)}
            return out

        assert len(index_members(long.record)) == 6  # one per UTC day its spans touch
        assert await index() == await members_of(long, mine, short, leaving)
        await w.eng.cancel(a1)  # long is offered ten: still live, still indexed
        assert (await w.entry(long.record.id)).status == "offered"
        await w.eng.accept_offer(long.record.id)  # booked: off the index
        await w.eng.leave_waitlist(leaving.record.id)
        assert await index() == await members_of(mine, short)
        await w.eng.cancel(a2)
        w.clock.now += 3 * 86400  # the short one's window passed: the sweeper drops it from all three
        assert await w.eng.waitlist.drop_ended(force=True) >= 1
        assert await w.r.zcard(keys.waitlist_waiting(w.pid)) == 0
        assert await index() == set()

    run(redis_db, body)


def test_caps_on_live_entries_per_practice_and_client_and_windows_of_at_most_90_dates(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        for _ in range(3):
            await w.eng.join_waitlist(w.pid, _req(w, day), client="public:198.51.100.7")
        with pytest.raises(errors.WaitlistClientFullError):
            await w.eng.join_waitlist(w.pid, _req(w, day), client="public:198.51.100.7")
        await w.eng.join_waitlist(w.pid, _req(w, day), client="public:198.51.100.8")  # another client may
        first = await w.eng.join_waitlist(w.pid, _req(w, day))  # staff (no client): only the practice's cap
        with pytest.raises(errors.WaitlistFullError):
            await w.eng.join_waitlist(w.pid, _req(w, day))
        assert await w.r.zcard(keys.waitlist_queue(w.pid)) == 5 and await w.r.hlen(keys.waitlist_entries(w.pid)) == 5
        await w.eng.leave_waitlist(first.record.id)  # a place frees up
        await w.eng.join_waitlist(w.pid, _req(w, day))
        # a window of 90 dates is taken, 91 refused (nothing stored)
        last = day + dt.timedelta(days=limits.MAX_WAITLIST_WINDOW_DAYS - 1)
        before = await w.r.hlen(keys.waitlist_entries(w.pid))
        with pytest.raises(errors.InvalidRequestError, match="at most 90"):
            await w.eng.join_waitlist(w.pid, _req(w, day, last + dt.timedelta(days=1)))
        assert await w.r.hlen(keys.waitlist_entries(w.pid)) == before

    run(redis_db, body, caps=(5, 3))


def test_a_90_date_window_is_taken(redis_db: str) -> None:
    async def body(w: World) -> None:
        last = w.tomorrow + dt.timedelta(days=limits.MAX_WAITLIST_WINDOW_DAYS - 1)
        entry = await w.eng.join_waitlist(w.pid, _req(w, w.tomorrow, last))
        assert entry.status == "waiting" and len(index_members(entry.record)) in (90, 91)

    run(redis_db, body, horizon_days=120)


def _req(w: World, day: dt.date, last: dt.date | None = None) -> WaitlistRequest:
    return WaitlistRequest(
        visit_type_id=w.vts[30].id, from_date=day, to_date=last or day,
        patient=Patient(name="P", email=f"{secrets.token_hex(3)}@example.org"),
    )  # fmt: skip


def test_entries_from_before_the_index_are_indexed_by_the_sweeper_once(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        appt = await w.book(ten)
        old, waiting = await w.join(), await w.join()
        members = set(await w.r.zrange(keys.waitlist_index(w.pid), 0, -1))
        # as Redis held them before the index existed
        await w.r.delete(keys.waitlist_index(w.pid), keys.waitlist_waiting(w.pid))
        await w.r.hdel(keys.waitlist_stats(w.pid), "indexed")
        assert await w.eng.waitlist.drop_ended(force=True) == 0
        assert set(await w.r.zrange(keys.waitlist_index(w.pid), 0, -1)) == members
        assert await w.r.hget(keys.waitlist_stats(w.pid), "indexed") == b"1"
        assert (await w.entry(waiting.record.id)).position == 1
        await w.eng.cancel(appt)
        got = await w.entry(old.record.id)
        assert got.offer is not None and got.offer.start == ten

    run(redis_db, body)
