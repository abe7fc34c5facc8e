"""Every status each Lua script can answer, called through the script layer (engine.scripts) on the real Redis.

A status is either returned as a typed value or raised as the domain error of ``STATUS_ERRORS``; these tests pin
both, so a script that changes a status or a layer that decodes it differently fails here first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from engine import errors, ids, keys, scripts
from engine.access import ApiKey, create_key, lookup_key, restore_key, revoke_key
from engine.model import SYSTEM, Appointment, Patient, Practice, Practitioner, Schedule, VisitType, WeeklyWindow
from engine.service import BookingEngine
from engine.settings import Settings
from tests.support.clock import Clock

pytestmark = pytest.mark.integration
NOW = 1_900_000_000.0  # a fixed instant (2030-03-17), moved by the tests through the engine's clock
PATIENT = Patient(name="Ada Lovelace", email="ada@example.org")


class World:
    def __init__(
        self, eng: BookingEngine, clock: Clock, practice: Practice, prs: list[Practitioner], vt: VisitType
    ) -> None:
        self.eng, self.clock, self.practice, self.prs, self.vt = eng, clock, practice, prs, vt
        self.lua = eng.lua

    @property
    def pid(self) -> str:
        return self.practice.id

    async def slot(self, n: int = 0, practitioner: int = 0) -> int:
        """The n-th free start of a practitioner from tomorrow on."""
        day = dt.datetime.fromtimestamp(self.clock.now, dt.UTC).date() + dt.timedelta(days=1)
        _, found = await self.eng.search(self.pid, day, 3, self.vt.id, self.prs[practitioner].id)
        return found.slots()[n].start

    def hold_call(self, start: int, practitioner: int = 0, **kw: Any) -> scripts.Call:
        pr = self.prs[practitioner].id
        args: dict[str, Any] = {
            "now_ms": int(self.clock.now * 1000),
            "practice_id": self.pid,
            "practitioner_id": pr,
            "visit_type_id": self.vt.id,
            "hold_id": ids.new_hold_id(pr),
            "start": start,
            "end": start + 1800,
            "ttl_ms": 300_000,
            "retention_ms": 86_400_000,
            "ctx": SYSTEM,
        }
        args.update(kw)
        return scripts.hold_call(**args)

    async def hold(self, start: int, practitioner: int = 0) -> str:
        call = self.hold_call(start, practitioner)
        assert await scripts.hold(self.lua, call) is None
        return call.ref.hold_id

    def book_call(self, hold_id: str, **kw: Any) -> scripts.Call:
        args: dict[str, Any] = {
            "now_ms": int(self.clock.now * 1000),
            "practice_id": self.pid,
            "practitioner_id": ids.practitioner_of_hold(hold_id) or "",
            "hold_id": hold_id,
            "appointment_id": ids.new_appointment_id(self.pid),
            "patient_json": b'{"name":"Ada Lovelace","email":"ada@example.org"}',
            "manage_hash": "0" * 64,
            "patient_ref": "p",
            "ctx": SYSTEM,
        }
        args.update(kw)
        return scripts.book_call(**args)

    async def booked(self, start: int, practitioner: int = 0) -> str:
        call = self.book_call(await self.hold(start, practitioner))
        assert isinstance(await scripts.book(self.lua, call), scripts.Booked)
        return call.keys[2].rsplit(":", 1)[1]  # the appointment id, from its key

    def cancel_call(self, appointment_id: str, practitioner: int = 0) -> scripts.Call:
        return scripts.cancel_call(
            now_ms=int(self.clock.now * 1000),
            practice_id=self.pid,
            appointment_id=appointment_id,
            practitioner_id=self.prs[practitioner].id,
            reason="",
            ctx=SYSTEM,
        )

    async def reschedule(self, appointment_id: str, hold_id: str, practitioner: int = 0) -> Any:
        return await scripts.reschedule(
            self.lua,
            now_ms=int(self.clock.now * 1000),
            practice_id=self.pid,
            appointment_id=appointment_id,
            practitioner_id=self.prs[practitioner].id,
            hold_id=hold_id,
            hold_practitioner_id=ids.practitioner_of_hold(hold_id) or "",
            move_id=ids.new_manage_token()[:16],
            ctx=SYSTEM,
        )


def run(redis_url: str, body: Callable[[World], Awaitable[None]]) -> None:
    """Run one test body against a fresh practice (two practitioners, 30-minute visits, 08:00-18:00 daily) on the
    Redis database ``redis_url`` (flushed first; a test's ``redis_db``)."""

    async def main() -> None:
        r = aioredis.Redis.from_url(redis_url)
        await r.flushdb()
        clock = Clock(NOW)
        eng = BookingEngine(r, Settings(redis_url=redis_url), clock)
        try:
            practice = await eng.create_practice("Scripts", "Europe/Berlin")
            prs = [await eng.add_practitioner(practice.id, f"Dr {i}") for i in range(2)]
            vt = await eng.add_visit_type(practice.id, "Check-up", 30)
            week = [WeeklyWindow(d, "08:00", "18:00") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
            for pr in prs:
                await eng.put_schedule(pr.id, Schedule(weekly=week, horizon_days=10, min_notice_minutes=60))
            await body(World(eng, clock, practice, prs, vt))
        finally:
            await r.aclose()

    asyncio.run(main())


# ----------------------------------------------------------------- hold
def test_hold_ok_replay_and_mismatch(redis_db: str) -> None:
    async def body(w: World) -> None:
        start = await w.slot()
        call = w.hold_call(start, idem_ref="k1", fingerprint="fp", record=b'{"stored":1}')
        assert await scripts.hold(w.lua, call) is None
        again = w.hold_call(start, idem_ref="k1", fingerprint="fp")
        assert await scripts.hold(w.lua, again) == scripts.Replay(b'{"stored":1}')
        with pytest.raises(errors.IdempotencyKeyReusedError):
            await scripts.hold(w.lua, w.hold_call(start, idem_ref="k1", fingerprint="other"))

    run(redis_db, body)


@pytest.mark.parametrize("reason", ["not_a_slot", "too_soon", "beyond_horizon", "taken"])
def test_hold_unavailable(redis_db: str, reason: str) -> None:
    async def body(w: World) -> None:
        start = await w.slot()
        if reason == "not_a_slot":
            start += 60
        elif reason == "too_soon":
            w.clock.now = start - 1800  # within the 60 minutes of notice
        elif reason == "beyond_horizon":
            w.clock.now = start - 11 * 86400  # the base zset still offers it; the horizon does not
        else:
            await w.hold(start)
        with pytest.raises(errors.SlotUnavailableError) as exc:
            await scripts.hold(w.lua, w.hold_call(start))
        assert exc.value.reason == reason

    run(redis_db, body)


# ----------------------------------------------------------------- release and expire
def test_release_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        start = await w.slot()
        hid = await w.hold(start)
        now = int(w.clock.now * 1000)
        pr = w.prs[0].id

        def call(h: str, at: int = now) -> scripts.Call:
            return scripts.release_call(now_ms=at, practice_id=w.pid, practitioner_id=pr, hold_id=h, ctx=SYSTEM)

        assert await scripts.release(w.lua, call(hid)) == "released"
        assert await scripts.release(w.lua, call(hid)) == "released"  # GONE, with the state it had
        late = await w.hold(await w.slot(1))
        assert await scripts.release(w.lua, call(late, now + 301_000)) == "expired"
        with pytest.raises(errors.NotFoundError):
            await scripts.release(w.lua, call(ids.new_hold_id(pr)))
        used = await w.hold(await w.slot(2))
        await scripts.book(w.lua, w.book_call(used))
        with pytest.raises(errors.HoldUsedError) as exc:
            await scripts.release(w.lua, call(used))
        assert exc.value.appointment_id

    run(redis_db, body)


def test_expire_counts_only_due_holds(redis_db: str) -> None:
    async def body(w: World) -> None:
        due = await w.hold(await w.slot(0))
        w.clock.now += 200
        fresh = await w.hold(await w.slot(1))
        holds = [(due, w.prs[0].id), (fresh, w.prs[0].id)]
        at = int((w.clock.now + 150) * 1000)  # past the first hold's expiry, not the second's
        assert await scripts.expire(w.lua, now_ms=at, practice_id=w.pid, holds=holds, actor="sweeper") == 1
        assert await scripts.expire(w.lua, now_ms=at, practice_id=w.pid, holds=holds, actor="sweeper") == 0

    run(redis_db, body)


def test_the_sweep_skips_a_practice_whose_shard_is_unreachable_and_sweeps_the_others(
    redis_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shard without a primary (Redis Cluster) fails only its practices' tidying, not every practice's."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from engine.holds import Holds

    async def body(w: World) -> None:
        await w.hold(await w.slot(0))
        elsewhere = ids.new_practice_id()
        await w.eng.redis.sadd(keys.PRACTICES, elsewhere)
        tidy = Holds._expire_due

        async def on_a_dead_shard(self: Holds, pid: str, now: int, limit: int) -> int:
            if pid == elsewhere:
                raise RedisConnectionError("its shard has no primary")
            return await tidy(self, pid, now, limit)

        monkeypatch.setattr(Holds, "_expire_due", on_a_dead_shard)
        w.clock.now += 301
        assert await w.eng.expire_due_holds() == 1  # whichever practice comes first
        await w.eng.redis.srem(keys.PRACTICES, elsewhere)

    run(redis_db, body)


def test_a_sweep_where_no_practice_answers_raises_the_outage_to_its_caller(
    redis_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis going down after the practice list was read is the same outage as before it: the sweeper's caller
    gets the error (its one storm line), not a second storm of "practices unreachable" lines."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from engine.holds import Holds

    async def body(w: World) -> None:
        await w.hold(await w.slot(0))

        async def down(self: Holds, pid: str, now: int, limit: int) -> int:
            raise RedisConnectionError("Redis went down")

        monkeypatch.setattr(Holds, "_expire_due", down)
        w.clock.now += 301
        with pytest.raises(RedisConnectionError, match="went down"):
            await w.eng.expire_due_holds()

    run(redis_db, body)


# ----------------------------------------------------------------- book
def test_book_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        start = await w.slot()
        hid = await w.hold(start)
        call = w.book_call(hid, idem_ref="b1", fingerprint="fp", record=b'{"appt":1}')
        booked = await scripts.book(w.lua, call)
        assert booked == scripts.Booked(w.vt.id, start, start + 1800)
        # the stored answer, and the hold's interval the script appended to it (the caller seals it without)
        assert await scripts.book(w.lua, w.book_call(hid, idem_ref="b1", fingerprint="fp")) == scripts.Replay(
            b'{"appt":1}\n%s\n%d\n%d' % (w.vt.id.encode(), start, start + 1800)
        )
        with pytest.raises(errors.IdempotencyKeyReusedError):
            await scripts.book(w.lua, w.book_call(hid, idem_ref="b1", fingerprint="x"))
        with pytest.raises(errors.HoldUsedError):
            await scripts.book(w.lua, w.book_call(hid))
        with pytest.raises(errors.NotFoundError):
            await scripts.book(w.lua, w.book_call(ids.new_hold_id(w.prs[0].id)))
        late = await w.hold(await w.slot(1))
        with pytest.raises(errors.HoldExpiredError) as exc:
            await scripts.book(w.lua, w.book_call(late, now_ms=int(w.clock.now * 1000) + 301_000))
        assert exc.value.state == "expired"

    run(redis_db, body)


def test_book_refuses_an_overlap_it_should_never_meet(redis_db: str) -> None:
    async def body(w: World) -> None:
        start = await w.slot()
        hid = await w.hold(start)
        # plant a booked claim over the hold (what a restore of a lost booking may do): booking must refuse
        await w.eng.redis.zadd(keys.claims(w.pid, w.prs[0].id), {f"b|a-planted|{start + 1800}|0": start})
        with pytest.raises(errors.OverlapDetectedError):
            await scripts.book(w.lua, w.book_call(hid))

    run(redis_db, body)


# ----------------------------------------------------------------- cancel and reschedule
def test_cancel_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        appt = await w.booked(await w.slot())
        assert await scripts.cancel(w.lua, w.cancel_call(appt, practitioner=1)) == scripts.RETRY
        assert await scripts.cancel(w.lua, w.cancel_call(appt)) == scripts.NewVersion(2)
        assert await scripts.cancel(w.lua, w.cancel_call(appt)) == scripts.NewVersion(2, already=True)
        with pytest.raises(errors.NotFoundError) as exc:
            await scripts.cancel(w.lua, w.cancel_call(ids.new_appointment_id(w.pid)))
        assert exc.value.kind == "appointment"

    run(redis_db, body)


def test_reschedule_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        appt = await w.booked(await w.slot(0))
        target = await w.hold(await w.slot(0, practitioner=1), practitioner=1)
        assert await w.reschedule(appt, target, practitioner=1) == scripts.RETRY
        assert await w.reschedule(appt, target) == scripts.NewVersion(2)
        with pytest.raises(errors.HoldUsedError):
            await w.reschedule(appt, target, practitioner=1)
        with pytest.raises(errors.NotFoundError) as exc:
            await w.reschedule(appt, ids.new_hold_id(w.prs[1].id), practitioner=1)
        assert exc.value.kind == "hold"
        late = await w.hold(await w.slot(3))
        w.clock.now += 301
        with pytest.raises(errors.HoldExpiredError):
            await w.reschedule(appt, late, practitioner=1)
        with pytest.raises(errors.NotFoundError) as exc:
            await w.reschedule(ids.new_appointment_id(w.pid), late)
        assert exc.value.kind == "appointment"
        # a hold whose interval another booking took meanwhile (planted claim) answers 'taken'
        free = await w.hold(await w.slot(5))
        start = int((await w.eng.get_hold(free)).start)
        await w.eng.redis.zadd(keys.claims(w.pid, w.prs[0].id), {f"b|a-planted|{start + 1800}|0": start})
        with pytest.raises(errors.SlotUnavailableError) as un:
            await w.reschedule(appt, free, practitioner=1)
        assert un.value.reason == "taken"
        assert await scripts.cancel(w.lua, w.cancel_call(appt, practitioner=1)) == scripts.NewVersion(3)
        other = await w.hold(await w.slot(7))
        with pytest.raises(errors.AppointmentCancelledError):
            await w.reschedule(appt, other, practitioner=1)

    run(redis_db, body)


# ----------------------------------------------------------------- schedules, setup records, keys, limits
def test_schedule_generations_and_stale_days(redis_db: str) -> None:
    async def body(w: World) -> None:
        state = await w.eng.availability.schedule_state(w.pid, w.prs[0].id)
        assert state is not None and state.until > 0
        assert not await w.eng.availability.restore_schedule(w.practice, w.prs[0].id, state.schedule)  # live: kept
        day = scripts.DayPlan(state.until - 86400, state.until, [[]])
        with pytest.raises(errors.StaleScheduleError):
            await scripts.apply_day(
                w.lua, practice_id=w.pid, practitioner_id=w.prs[0].id, visit_type_ids=[w.vt.id], gen="0", days=[day]
            )
        await scripts.apply_day(
            w.lua, practice_id=w.pid, practitioner_id=w.prs[0].id, visit_type_ids=[w.vt.id], gen=state.gen, days=[day]
        )  # the current generation applies
        await w.eng.redis.delete(keys.schedule(w.pid, w.prs[1].id))
        assert await w.eng.availability.restore_schedule(w.practice, w.prs[1].id, state.schedule)

    run(redis_db, body)


def test_restore_entity_never_replaces(redis_db: str) -> None:
    async def body(w: World) -> None:
        pr = w.prs[0]
        key = keys.practitioners(w.pid)
        assert not await scripts.restore_entity(w.lua, practice_id=w.pid, key=key, field=pr.id, record=pr)
        await w.eng.redis.hdel(key, pr.id)
        assert await scripts.restore_entity(w.lua, practice_id=w.pid, key=key, field=pr.id, record=pr)
        assert (await w.eng.get_practitioner(pr.id)).name == pr.name

    run(redis_db, body)


def test_api_key_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        key, _token = await create_key(w.eng, w.pid)
        assert not await restore_key(w.eng, key)  # present: SKIP
        await revoke_key(w.eng, w.pid, key.id)
        with pytest.raises(errors.NotFoundError) as exc:
            await revoke_key(w.eng, w.pid, key.id)
        assert exc.value.kind == "api key"
        # a revocation is final: reconciliation's restore (from a snapshot taken before it) is refused
        assert not await restore_key(w.eng, ApiKey(key.id, w.pid, key.hash, key.created_ms))
        assert await lookup_key(w.eng, _token) is None
        other, token = await create_key(w.eng, w.pid)
        await w.eng.redis.delete(keys.api_keys(w.pid), keys.api_key_hashes(w.pid))  # Redis lost the live key
        assert await restore_key(w.eng, other)
        assert await lookup_key(w.eng, token) == other

    run(redis_db, body)


def test_limit_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        now = int(w.clock.now * 1000)

        async def limit(action: str, cap: int, member: str, per_minute: int = 3) -> None:
            await scripts.limit(
                w.lua,
                now_ms=now,
                client="c1",
                action=action,
                per_minute=per_minute,
                live_holds=cap,
                hold_ttl_ms=300_000,
                member=member,
            )

        await limit("hold", 1, "h1")
        with pytest.raises(errors.LimitExceededError, match="live holds") as exc:
            await limit("hold", 1, "h2")
        assert exc.value.retry_after_s == 300
        for i in range(3):
            await limit("book", 0, f"b{i}")
        with pytest.raises(errors.LimitExceededError, match="book requests") as exc:
            await limit("book", 0, "b3")
        assert exc.value.retry_after_s == 60

    run(redis_db, body)


def test_a_booking_limit_call_takes_its_hold_off_the_cap_only_when_it_counts(redis_db: str) -> None:
    async def body(w: World) -> None:
        now = int(w.clock.now * 1000)

        async def limit(action: str, member: str, forget: str = "") -> tuple[int, int, int]:
            return await scripts.limit(
                w.lua, now_ms=now, client="c2", action=action, per_minute=2 if action == "book" else 5,
                live_holds=1 if action == "hold" else 0,
                hold_ttl_ms=300_000, member=member, forget=forget,
            )  # fmt: skip

        await limit("hold", "h1")
        with pytest.raises(errors.LimitExceededError, match="live holds"):
            await limit("hold", "h2")
        assert (await limit("book", "b1", forget="h1"))[2] == now + 300_000  # its expiry: to put it back
        assert (await limit("book", "b2", forget="h1"))[2] == 0  # no longer there
        await limit("hold", "h2")  # booking h1 made room
        with pytest.raises(errors.LimitExceededError, match="book requests"):
            await limit("book", "b3", forget="h2")  # refused: not counted, and h2 still counts
        with pytest.raises(errors.LimitExceededError, match="live holds"):
            await limit("hold", "h3")

    run(redis_db, body)


# ----------------------------------------------------------------- reconciliation's restore scripts
def test_restore_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        start = await w.slot()
        appt = Appointment(
            id=ids.new_appointment_id(w.pid),
            status="booked",
            version=3,
            practice_id=w.pid,
            practitioner_id=w.prs[0].id,
            visit_type_id=w.vt.id,
            start=start,
            end=start + 1800,
            patient=PATIENT,
        )

        async def restore(a: Appointment) -> scripts.Restored:
            return await scripts.restore(
                w.lua,
                now_ms=int(w.clock.now * 1000),
                appointment=a,
                manage_hash="h",
                updated_ms=1,
                redis_practitioner=a.practitioner_id,
            )

        assert (await restore(appt)).status == "OK"
        assert await restore(appt) == scripts.Restored("SKIP", ["3"])
        clash = Appointment(
            **{**{f: getattr(appt, f) for f in appt.__struct_fields__}, "id": ids.new_appointment_id(w.pid)}
        )
        res = await restore(clash)
        assert res.status == "CONFLICT" and res.detail == [f"b|{appt.id}|{start + 1800}|0"]

    run(redis_db, body)


def test_restore_seq_only_raises(redis_db: str) -> None:
    async def body(w: World) -> None:
        have = int(await w.eng.redis.hget(keys.audit(w.pid), "seq") or 0)
        assert await scripts.restore_seq(w.lua, practice_id=w.pid, last_seq=have - 1) is None
        assert await scripts.restore_seq(w.lua, practice_id=w.pid, last_seq=have + 10) == have
        assert int(await w.eng.redis.hget(keys.audit(w.pid), "seq")) == have + 10

    run(redis_db, body)


def test_a_lease_has_one_owner_until_it_is_given_back_or_runs_out(redis_db: str) -> None:
    async def body(w: World) -> None:
        def call(owner: str, ttl_ms: int) -> scripts.Call:
            return scripts.lease_call(practice_id=w.pid, owner=owner, ttl_ms=ttl_ms)

        key = keys.persist_lease(w.pid)
        assert await scripts.lease(w.lua, call("a", 60_000)) is True  # taken
        assert await scripts.lease(w.lua, call("b", 60_000)) is False  # held by a: nothing written
        assert await scripts.lease(w.lua, call("b", 0)) is False  # b cannot give back a's lease
        assert await w.eng.redis.get(key) == b"a"
        assert await scripts.lease(w.lua, call("a", 120_000)) is True  # renewed
        assert 60_000 < await w.eng.redis.pttl(key) <= 120_000
        assert await scripts.lease(w.lua, call("a", 0)) is True  # given back
        assert not await w.eng.redis.exists(key)
        assert await scripts.lease(w.lua, call("b", 1)) is True  # free: b takes it
        await asyncio.sleep(0.01)
        assert await scripts.lease(w.lua, call("a", 60_000)) is True  # b's ran out: a takes it

    run(redis_db, body)


def test_every_status_has_one_error_and_every_script_a_function() -> None:
    """The status table names each error once; every script file has its typed function of the same name."""
    assert len({id(v) for v in scripts.STATUS_ERRORS.values()}) == len(scripts.STATUS_ERRORS)
    for name in scripts.NAMES:
        assert callable(getattr(scripts, name)), name
        assert scripts.source(name).splitlines()[-1]  # the file exists and is not empty
        header = scripts.registry._read(name).splitlines()[0]
        assert header.startswith(f"-- {name}:"), header


# ----------------------------------------------------------------- retries of a call whose answer was lost
def _events(w: World, kind: bytes) -> Awaitable[int]:
    async def count() -> int:
        return sum(f[b"type"] == kind for _, f in await w.eng.redis.xrange(keys.events(w.pid)))

    return count()


def test_a_retried_hold_answers_ok_again_and_claims_once(redis_db: str) -> None:
    """redis-py re-sends a script after a connection error: the winner must not read 'taken' (its own claim)."""

    async def body(w: World) -> None:
        call = w.hold_call(await w.slot())
        assert await scripts.hold(w.lua, call) is None
        assert await scripts.hold(w.lua, call) is None
        assert await w.eng.redis.zcard(keys.claims(w.pid, w.prs[0].id)) == 1
        assert await _events(w, b"hold") == 1

    run(redis_db, body)


def test_a_retried_book_answers_the_booking_again_and_books_once(redis_db: str) -> None:
    async def body(w: World) -> None:
        start = await w.slot()
        call = w.book_call(await w.hold(start))
        first = await scripts.book(w.lua, call)
        assert await scripts.book(w.lua, call) == first == scripts.Booked(w.vt.id, start, start + 1800)
        assert await _events(w, b"book") == 1
        with pytest.raises(errors.HoldUsedError):  # another request (another appointment id) still loses
            await scripts.book(w.lua, w.book_call(call.ref.hold_id))

    run(redis_db, body)


def test_a_retried_reschedule_answers_the_move_again_and_moves_once(redis_db: str) -> None:
    async def body(w: World) -> None:
        appt = await w.booked(await w.slot(0))
        target = await w.hold(await w.slot(0, practitioner=1), practitioner=1)
        args: dict[str, Any] = {
            "now_ms": int(w.clock.now * 1000),
            "practice_id": w.pid,
            "appointment_id": appt,
            "practitioner_id": w.prs[0].id,
            "hold_id": target,
            "hold_practitioner_id": w.prs[1].id,
            "move_id": "m-1",
            "ctx": SYSTEM,
        }
        assert await scripts.reschedule(w.lua, **args) == scripts.NewVersion(2)
        assert await scripts.reschedule(w.lua, **args) == scripts.NewVersion(2)  # the same call, re-sent
        assert await _events(w, b"reschedule") == 1
        with pytest.raises(errors.HoldUsedError):  # a new request onto the same hold is refused as before
            await scripts.reschedule(w.lua, **{**args, "practitioner_id": w.prs[1].id, "move_id": "m-2"})

    run(redis_db, body)


# ----------------------------------------------------------------- the waitlist's scripts (docs/waitlist.md)
async def _entry(w: World, **kw: Any) -> str:
    from engine.model import WaitlistRequest

    day = dt.datetime.fromtimestamp(w.clock.now, dt.UTC).date() + dt.timedelta(days=1)
    req = WaitlistRequest(visit_type_id=w.vt.id, from_date=day, to_date=day + dt.timedelta(days=2), patient=PATIENT,
                          **kw)  # fmt: skip
    return (await w.eng.join_waitlist(w.pid, req)).record.id


async def _kit(w: World, practitioner: int = 0) -> scripts.OfferKit:
    return await w.eng.appointments.offers.kit(w.pid, w.prs[practitioner].id)


async def _offered(w: World) -> tuple[str, str, str]:
    """An entry holding an offer (a cancellation freed its slot): (entry id, offer hold id, the booking's start)."""
    start = await w.slot()
    appt = await w.booked(start)
    entry = await _entry(w)
    await w.eng.cancel(appt)
    got, _ = await w.eng.get_waitlist_entry(entry)
    assert got.offer is not None and got.offer.start == start
    return entry, got.offer.hold_id, str(start)


def test_waitlist_join_ok_and_a_retry_changes_nothing(redis_db: str) -> None:
    async def body(w: World) -> None:
        from engine.waitlist import decode

        first = await _entry(w)
        raw = await w.eng.redis.hget(keys.waitlist_entries(w.pid), first)
        rec = decode(raw)
        assert (rec.order, rec.status, rec.version) == (1, "waiting", 1)
        again = await scripts.waitlist_join(w.lua, now_ms=1, practice_id=w.pid, entry_id=first, record=raw, ctx=SYSTEM)
        assert again == 1 and await _events(w, b"waitlist_join") == 1
        assert await w.eng.redis.hget(keys.waitlist_stats(w.pid), "joined") == b"1"

    run(redis_db, body)


def test_waitlist_decline_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        now = int(w.clock.now * 1000)
        entry, hold_id, _ = await _offered(w)

        async def decline(h: str, kit: scripts.OfferKit | None, e: str = entry, at: int = now) -> Any:
            return await scripts.waitlist_decline(w.lua, now_ms=at, practice_id=w.pid, entry_id=e, hold_id=h,
                                                  kit=kit, ctx=SYSTEM)  # fmt: skip

        assert await decline(ids.new_hold_id(w.prs[0].id), await _kit(w)) is None  # RETRY: another offer
        assert await decline(hold_id, await _kit(w, 1)) is None  # RETRY: another practitioner
        with pytest.raises(errors.OfferKitError):  # a kit without every visit type of the practice
            await decline(hold_id, msgspec.structs.replace(await _kit(w), visit_types=()))
        assert await decline(hold_id, await _kit(w)) == scripts.Left(2 + 1)
        with pytest.raises(errors.NoOfferError) as exc:
            await decline(hold_id, await _kit(w))
        assert exc.value.status == "waiting"
        with pytest.raises(errors.NotFoundError):
            await decline("", None, e=f"{w.pid}.w" + "x" * 16)
        # an offer that lapsed and was tidied: 410
        other, _, start = await _offered(w)
        w.clock.now += 901
        await w.eng.expire_due_holds()
        with pytest.raises(errors.OfferExpiredError):
            await decline("", None, e=other, at=int(w.clock.now * 1000))

    run(redis_db, body)


def test_waitlist_leave_statuses(redis_db: str) -> None:
    async def body(w: World) -> None:
        now = int(w.clock.now * 1000)
        entry, hold_id, _ = await _offered(w)

        async def leave(h: str, kit: scripts.OfferKit | None, e: str = entry) -> Any:
            return await scripts.waitlist_leave(w.lua, now_ms=now, practice_id=w.pid, entry_id=e, hold_id=h, kit=kit,
                                                ctx=SYSTEM)  # fmt: skip

        assert await leave("", None) is None  # RETRY: it holds an offer the caller did not read
        with pytest.raises(errors.OfferKitError):
            await leave(hold_id, msgspec.structs.replace(await _kit(w), visit_types=()))
        assert await leave(hold_id, await _kit(w)) == scripts.Left(3)
        assert await leave(hold_id, await _kit(w)) == scripts.Left(0, already=True, status="left")
        waiting = await _entry(w)
        assert await leave(hold_id, None, e=waiting) is None  # RETRY: the caller read an offer it does not hold
        assert await leave("", None, e=waiting) == scripts.Left(2)
        with pytest.raises(errors.NotFoundError):
            await leave("", None, e=f"{w.pid}.w" + "y" * 16)

    run(redis_db, body)


def test_freeing_scripts_refuse_to_free_without_a_kit_while_entries_wait(redis_db: str) -> None:
    """While entries wait, a call without a kit (or with one missing a visit type) changes nothing: 'KIT'."""

    async def body(w: World) -> None:
        appt = await w.booked(await w.slot(0))
        held = await w.hold(await w.slot(2))
        target = await w.hold(await w.slot(0, practitioner=1), practitioner=1)
        await _entry(w)
        with pytest.raises(errors.OfferKitError):
            await scripts.cancel(w.lua, w.cancel_call(appt))
        with pytest.raises(errors.OfferKitError):
            await scripts.release(w.lua, scripts.release_call(now_ms=int(w.clock.now * 1000), practice_id=w.pid,
                                  practitioner_id=w.prs[0].id, hold_id=held, ctx=SYSTEM))  # fmt: skip
        with pytest.raises(errors.OfferKitError):
            await w.reschedule(appt, target)
        state = await w.eng.availability.schedule_state(w.pid, w.prs[0].id)
        assert state is not None
        day = scripts.DayPlan(state.until - 86400, state.until, [[]])
        with pytest.raises(errors.OfferKitError):
            await scripts.apply_day(w.lua, practice_id=w.pid, practitioner_id=w.prs[0].id, visit_type_ids=[w.vt.id],
                                     gen=state.gen, days=[day])  # fmt: skip
        holds = [(held, w.prs[0].id)]
        at = int((w.clock.now + 301) * 1000)
        assert await scripts.expire(w.lua, now_ms=at, practice_id=w.pid, holds=holds, actor="sweeper") == 0
        kit = await _kit(w)
        assert await scripts.expire(w.lua, now_ms=at, practice_id=w.pid, holds=holds, actor="sweeper", kit=kit) == 1
        assert (await w.eng.get_appointment(appt))[0].status == "booked"  # nothing was changed by the refusals

    run(redis_db, body)
