"""The availability cache is exact: under random holds, bookings, releases, cancels, reschedules, expiries and
schedule changes (made by another engine, as another API process would), every cached answer equals the
uncached one computed by the search script at the same instant. While Redis is unreachable, cached days answer
stale for at most STALE_READ_SECONDS, then the error reaches the caller."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import shutil
import socket
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from api import render
from engine import errors
from engine.model import Patient, Practice, Schedule, WeeklyWindow
from engine.search_cache import DayEntry, SearchCache, entry_size
from engine.service import BookingEngine
from engine.settings import Settings
from tests.support import processes
from tests.support.http import next_weekday, setup_practice

pytestmark = pytest.mark.integration
CACHE = 64 * 1024 * 1024  # SEARCH_CACHE_BYTES: the cache is off by default
START = 1_900_000_000.0
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PATIENT = Patient(name="Ada Lovelace", email="ada@example.org")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def schedule(rng: random.Random) -> Schedule:
    open_h, close_h = rng.choice([(7, 12), (8, 18), (9, 17), (13, 20)])
    days = rng.sample(WEEK, rng.randint(3, 7))
    return Schedule(
        weekly=[WeeklyWindow(d, f"{open_h:02d}:00", f"{close_h:02d}:00") for d in days],
        slot_step_minutes=rng.choice([15, 30]),
        horizon_days=rng.choice([2, 3, 5]),
        min_notice_minutes=rng.choice([0, 30, 120]),
    )


async def mornings(eng: BookingEngine, name: str) -> tuple[Practice, str, str]:
    """A practice with one practitioner working 08:00-12:00 every day, and a 30-minute visit type."""
    p = await eng.create_practice(name, "Europe/Berlin")
    pr = (await eng.add_practitioner(p.id, "Dr")).id
    vt = (await eng.add_visit_type(p.id, "V", 30)).id
    await eng.put_schedule(pr, Schedule(weekly=[WeeklyWindow(d, "08:00", "12:00") for d in WEEK]))
    return p, pr, vt


def test_cached_answers_equal_uncached_answers_under_random_changes(redis_db: str) -> None:
    async def main() -> None:
        r1, r2 = aioredis.Redis.from_url(redis_db), aioredis.Redis.from_url(redis_db)
        await r1.flushdb()
        clock = Clock()
        reader = BookingEngine(r1, Settings(redis_url=redis_db, hold_ttl_seconds=120, search_cache_bytes=CACHE), clock)
        writer = BookingEngine(
            r2, Settings(redis_url=redis_db, hold_ttl_seconds=120, search_cache_bytes=CACHE), clock
        )  # another process
        rng = random.Random(20261129)
        try:
            p = await writer.create_practice("Cache", rng.choice(["Europe/Berlin", "America/New_York"]))
            prs = [(await writer.add_practitioner(p.id, f"Dr {i}")).id for i in range(3)]
            vts = [(await writer.add_visit_type(p.id, f"V{m}", m)).id for m in (15, 30, 60)]
            for pr in prs:
                await writer.put_schedule(pr, schedule(rng))
            holds: list[str] = []
            appts: list[str] = []
            rendered = render.RenderedDays(CACHE)
            compared = hits_before = 0
            for step in range(400):
                first = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=rng.randint(-1, 2))
                days, vt = rng.randint(1, 4), rng.choice(vts)
                who = rng.choice([None, *prs])
                op = rng.random()
                if op < 0.35:
                    _, found = await writer.search(p.id, first, days, vt, who)
                    if found.slots():
                        slot = rng.choice(found.slots())
                        start = dt.datetime.fromtimestamp(slot.start, dt.UTC)
                        try:
                            hold, _ = await writer.hold(slot.practitioner_id, vt, start)
                            holds.append(hold.id)
                        except errors.SlotUnavailableError:
                            pass
                elif op < 0.5 and holds:
                    try:
                        appt, _ = await writer.book(holds.pop(rng.randrange(len(holds))), PATIENT)
                        appts.append(appt.id)
                    except (errors.HoldExpiredError, errors.HoldUsedError):
                        pass
                elif op < 0.58 and holds:
                    try:
                        await writer.release_hold(holds.pop(rng.randrange(len(holds))))
                    except errors.HoldUsedError:
                        pass
                elif op < 0.66 and appts:
                    await writer.cancel(appts.pop(rng.randrange(len(appts))))
                elif op < 0.72 and appts and holds:
                    try:
                        await writer.reschedule(rng.choice(appts), holds.pop())
                    except (errors.BookingError, errors.NotFoundError):
                        pass
                elif op < 0.76:
                    await writer.put_schedule(rng.choice(prs), schedule(rng))
                elif op < 0.78:
                    clock.now += 86400  # a new day: the horizon roll materialises it (apply_day alone)
                    await writer.roll_horizon()
                elif op < 0.86:
                    clock.now += rng.choice([1, 30, 59, 60, 61, 119, 120, 121, 900, 3600])  # expiries, notice
                elif op < 0.9:
                    await writer.expire_due_holds()
                # the reader searches through its cache; the script answers the same question uncached
                cached = await reader.search_answer(p.id, first, days, vt, who)
                practice, direct = await reader.search(p.id, first, days, vt, who)
                assert not cached.stale
                assert cached.result == direct, f"step {step}: cached answer differs from the script's"
                # the HTTP body assembled from rendered days is the uncached path's, byte for byte
                body = render.availability_days_bytes(cached.practice, vt, first, cached, rendered)
                assert body == render.availability_bytes(practice, vt, first, days, direct), f"step {step}"
                compared += 1
                if step == 200:
                    hits_before = reader.searcher.cache.hits
            assert compared == 400
            assert reader.searcher.cache.hits > hits_before > 0  # the cache did answer, not only the script
            assert reader.searcher.cache.misses > 0
            assert rendered.hits > 0 and rendered.misses > 0  # days were reused, and rendered again when they moved
        finally:
            await r1.aclose()
            await r2.aclose()

    asyncio.run(main())


def test_a_cache_hit_reads_only_the_versions(redis_db: str) -> None:
    """Nothing changed: the second search runs no search script (one round trip: the versions)."""

    async def main() -> None:
        r = aioredis.Redis.from_url(redis_db)
        await r.flushdb()
        clock = Clock()
        eng = BookingEngine(r, Settings(redis_url=redis_db, search_cache_bytes=CACHE), clock)
        try:
            p, pr, vt = await mornings(eng, "Hits")
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            first = await eng.search_answer(p.id, day, 3, vt)
            ran: list[str] = []
            run = eng.lua.run

            async def counting(name: str, *args: Any, **kw: Any) -> Any:
                ran.append(name)
                return await run(name, *args, **kw)

            eng.lua.run = counting  # type: ignore[method-assign]
            again = await eng.search_answer(p.id, day, 3, vt)
            assert again.result == first.result and len(first.result) > 0
            assert ran == []  # no script: the versions were read, nothing else
            assert eng.searcher.cache.hits == 3  # three days, one practitioner
        finally:
            await r.aclose()

    asyncio.run(main())


def test_the_lru_is_bounded_in_bytes() -> None:
    entry = DayEntry(tuple(range(40)), (1, 2, 3), 0, 0)
    cache = SearchCache(max_bytes=10 * entry_size(entry))
    for i in range(25):
        cache.put(("r", "v", i), entry)
    assert len(cache) == 10 and cache.bytes <= cache.max_bytes and cache.evictions == 15
    assert cache.get(("r", "v", 0)) is None and cache.get(("r", "v", 24)) == entry


# ----------------------------------------------------------------- reads through an outage
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_cached_days_answer_stale_while_redis_is_down_then_503(tmp_path: object) -> None:
    port = _free_port()
    proc = processes.spawn(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    )

    def stop() -> None:
        if proc.poll() is None:
            processes.kill9(proc)
        processes.kill_group(proc)

    async def main() -> None:
        url = f"redis://127.0.0.1:{port}/0"
        r = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        for _ in range(100):
            try:
                await r.ping()
                break
            except RedisConnectionError:
                await asyncio.sleep(0.05)
        clock = Clock()
        eng = BookingEngine(r, Settings(redis_url=url, stale_read_seconds=60, search_cache_bytes=CACHE), clock)
        try:
            p, pr, vt = await mornings(eng, "Outage")
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            fresh = await eng.search_answer(p.id, day, 2, vt)
            assert not fresh.stale and len(fresh.result) > 0
            stop()
            clock.now += 20
            stale = await eng.search_answer(p.id, day, 2, vt)
            assert stale.stale and stale.age_s == 20 and stale.result == fresh.result
            assert stale.audit is not None
            await stale.audit()  # cannot reach Redis: counted, not raised
            assert eng.searcher.audit_failures == 1
            with pytest.raises(RedisConnectionError):
                await eng.search_answer(p.id, day + dt.timedelta(days=3), 1, vt)  # a day never read
            with pytest.raises(RedisConnectionError):
                await eng.hold(pr, vt, dt.datetime.fromtimestamp(fresh.result.slots()[0].start, dt.UTC))
            clock.now += 41  # 61 s after the read: past STALE_READ_SECONDS
            with pytest.raises(RedisConnectionError):
                await eng.search_answer(p.id, day, 2, vt)
        finally:
            await r.aclose()

    try:
        asyncio.run(main())
    finally:
        stop()


@pytest.mark.parametrize("what", ["notice", "horizon", "hold expiry", "horizon roll"])
def test_time_alone_renews_a_cached_day(redis_db: str, what: str) -> None:
    """No script that claims runs between the two searches: the clock moves past the instant the first answer
    gave (or, for the roll, a day is materialised by apply_day alone)."""

    async def main() -> None:
        r = aioredis.Redis.from_url(redis_db)
        await r.flushdb()
        clock = Clock()
        eng = BookingEngine(r, Settings(redis_url=redis_db, hold_ttl_seconds=300, search_cache_bytes=CACHE), clock)
        try:
            p = await eng.create_practice("Time", "UTC")
            pr = (await eng.add_practitioner(p.id, "Dr")).id
            vt = (await eng.add_visit_type(p.id, "V", 30)).id
            await eng.put_schedule(
                pr,
                Schedule(
                    weekly=[WeeklyWindow(d, "00:00", "24:00") for d in WEEK], horizon_days=2, min_notice_minutes=60
                ),
            )
            today = dt.datetime.fromtimestamp(clock.now, dt.UTC).date()
            day = {"horizon": today + dt.timedelta(days=2), "horizon roll": today + dt.timedelta(days=3)}.get(
                what, today
            )
            if what == "hold expiry":
                _, found = await eng.search(p.id, day, 1, vt)
                await eng.hold(pr, vt, dt.datetime.fromtimestamp(found.slots()[3].start, dt.UTC))
            before = await eng.search_answer(p.id, day, 1, vt)
            clock.now += {"hold expiry": 301, "horizon roll": 86400}.get(what, 3600)
            if what == "horizon roll":
                await eng.roll_horizon()  # materialises the new day: apply_day bumps its versions
            after = await eng.search_answer(p.id, day, 1, vt)
            _, direct = await eng.search(p.id, day, 1, vt)
            assert after.result == direct
            assert after.result != before.result  # time alone changed the answer, and the cache followed
        finally:
            await r.aclose()

    asyncio.run(main())


def test_metrics_count_cache_hits_and_misses(make_client: Any) -> None:
    """/metrics: a first search misses on each practitioner-day, the same search again hits."""
    client = make_client(search_cache_bytes=CACHE)
    ctx = setup_practice(client, durations=(30,), practitioners=2)
    url = f"/v1/practices/{ctx['practice_id']}/availability"
    params = {"date": next_weekday(2).isoformat(), "visit_type_id": ctx["visit_types"][30], "days": 3}

    def counted() -> dict[str, float]:
        found = re.findall(
            r'^booking_search_cache_total\{outcome="(\w+)"\} ([0-9.e+]+)$', client.get("/metrics").text, re.M
        )
        return {k: float(v) for k, v in found}

    first = client.get(url, params=params)
    before = counted()
    again = client.get(url, params=params)
    after = counted()
    assert first.status_code == again.status_code == 200 and again.content == first.content
    assert after.get("hit", 0) - before.get("hit", 0) == 6  # 2 practitioners x 3 days
    assert after.get("miss", 0) == before.get("miss", 0)
    assert re.search(r"^booking_search_cache_bytes [1-9]", client.get("/metrics").text, re.M)


@pytest.mark.parametrize("cache_bytes", [0, CACHE])
def test_a_practitioner_added_through_another_process_shows_in_the_next_search(redis_db: str, cache_bytes: int) -> None:
    """Each process keeps a practice's list of practitioners (engine/catalog.py); the search script refuses a
    list that is no longer whole ('ROSTER'), so a practitioner added and scheduled by another API process offers
    slots in this one's very next search, cached or not."""

    async def main() -> None:
        r1, r2 = aioredis.Redis.from_url(redis_db), aioredis.Redis.from_url(redis_db)
        await r1.flushdb()
        clock = Clock()
        reader = BookingEngine(r1, Settings(redis_url=redis_db, search_cache_bytes=cache_bytes), clock)
        writer = BookingEngine(r2, Settings(redis_url=redis_db, search_cache_bytes=cache_bytes), clock)
        try:
            p, first_pr, vt = await mornings(writer, "Roster")
            day = dt.datetime.fromtimestamp(clock.now, dt.UTC).date() + dt.timedelta(days=1)
            before = await reader.search_answer(p.id, day, 2, vt)
            assert len(before.result) and {s.practitioner_id for s in before.result.slots()} == {first_pr}
            again = await reader.search_answer(p.id, day, 2, vt)  # the list is this process's now
            assert again.result == before.result
            second = (await writer.add_practitioner(p.id, "Dr Two")).id
            await writer.put_schedule(second, Schedule(weekly=[WeeklyWindow(d, "13:00", "15:00") for d in WEEK]))
            after = await reader.search_answer(p.id, day, 2, vt)
            direct = await writer.search_answer(p.id, day, 2, vt)
            assert {s.practitioner_id for s in after.result.slots()} == {first_pr, second}
            assert after.result == direct.result
            assert len(after.result) > len(before.result)
        finally:
            await r1.aclose()
            await r2.aclose()

    asyncio.run(main())
