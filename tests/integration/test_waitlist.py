"""The waitlist's offers on the real Redis (invariant 11): every change that frees time offers it to the
earliest-joined matching entry first, as an exclusive hold, in the same script; declines, lapses and leaves pass
it on, and finally back to everyone. Driven through the engine with a clock the tests move."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from engine import errors, keys, scripts, timeutil
from engine import events as ev
from engine.model import SYSTEM, Schedule, WeeklyWindow
from tests.support.waitlist import World, check_offers, run

pytestmark = pytest.mark.integration


def offers_of(decoded: list[ev.Event]) -> list[ev.WaitlistOffered]:
    return [e for e in decoded if isinstance(e, ev.WaitlistOffered)]


def durations(w: World) -> dict[str, int]:
    return {vt.id: vt.duration_minutes * 60 for vt in w.vts.values()}


def test_a_cancellation_offers_the_slot_to_the_first_matching_entry_who_accepts(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        ten = w.at(day, "10:00")
        appt = await w.book(ten)
        first = await w.join(pr=0)
        second = await w.join()
        assert (first.status, first.position, second.position) == ("waiting", 0, 1)
        assert first.manage_token and first.record.spans == [[w.at(day, "00:00"), w.at(day + dt.timedelta(1), "00:00")]]
        await w.eng.cancel(appt)
        got = await w.entry(first.record.id)
        assert got.status == "offered" and got.offer is not None
        assert (got.offer.start, got.offer.end, got.offer.practitioner_id) == (ten, ten + 1800, w.prs[0].id)
        assert got.offer.expires_ms == int(w.clock.now * 1000) + 900_000
        assert (await w.entry(second.record.id)).status == "waiting"
        assert ten not in await w.free(day)  # a search right after does not show it
        with pytest.raises(errors.SlotUnavailableError):  # nor can anyone else hold it
            await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(ten))
        hold = await w.eng.get_hold(got.offer.hold_id)  # the offer is an ordinary hold of the entry
        assert (hold.state, hold.start, hold.visit_type_id) == ("held", ten, w.vts[30].id)
        appt2, replay = await w.eng.accept_offer(first.record.id)
        assert not replay and appt2.manage_token and (appt2.start, appt2.status) == (ten, "booked")
        assert appt2.patient == first.record.patient
        done = await w.entry(first.record.id)
        assert (done.status, done.record.appointment_id, done.offer) == ("booked", appt2.id, None)
        assert await w.r.zscore(keys.waitlist_queue(w.pid), first.record.id) is None
        decoded = await w.events()
        tags = [e.__struct_config__.tag for e in decoded]
        assert tags[-2:] == ["book", "waitlist_accept"]
        (offer,) = offers_of(decoded)
        assert offer.detail.cause == "cancel" and offer.hold_id == got.offer.hold_id and offer.seq > 0
        # no patient data: no name, no e-mail, no patient field (random ids may hold "ada" or "pat" by chance)
        raw = offer.detail_raw.lower()
        assert not any(s in raw for s in ("lovelace", "example.org", '"patient', '"name"', '"email"'))
        stats = await w.r.hgetall(keys.waitlist_stats(w.pid))
        assert (stats[b"joined"], stats[b"offers"], stats[b"accepted"]) == (b"2", b"1", b"1")
        with pytest.raises(errors.NoOfferError):
            await w.eng.accept_offer(first.record.id)
        assert check_offers(decoded, durations(w)) == 1

    run(redis_db, body)


def test_decline_passes_the_offer_to_the_next_entry_never_back(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        appt = await w.book(ten)
        a, b = await w.join(), await w.join()
        await w.eng.cancel(appt)
        declined = await w.eng.decline_offer(a.record.id)
        assert declined.status == "waiting" and declined.offer is None
        got = await w.entry(b.record.id)
        assert got.status == "offered" and got.offer is not None and got.offer.start == ten
        await w.eng.decline_offer(b.record.id)  # nobody left who has not had it: back to everyone
        assert ten in await w.free(w.tomorrow)
        assert (await w.entry(a.record.id)).status == "waiting"
        with pytest.raises(errors.NoOfferError):
            await w.eng.decline_offer(a.record.id)
        decoded = await w.events()
        assert [o.data.id for o in offers_of(decoded)] == [a.record.id, b.record.id]
        assert offers_of(decoded)[1].detail.cause == "waitlist_decline"
        check_offers(decoded, durations(w))

    run(redis_db, body)


def test_a_lapse_offers_the_slot_to_the_next_entry_then_to_everyone(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        appt = await w.book(ten)
        a, b = await w.join(), await w.join()
        await w.eng.cancel(appt)
        w.clock.now += 61  # the offer (60 s) ran out; until the sweeper runs, its interval stays withheld
        assert (await w.entry(a.record.id)).status == "waiting"
        with pytest.raises(errors.OfferExpiredError):
            await w.eng.accept_offer(a.record.id)
        assert ten not in await w.free(w.tomorrow)
        with pytest.raises(errors.SlotUnavailableError):
            await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(ten))
        assert await w.sweep() == 1
        got_b = await w.entry(b.record.id)
        assert got_b.status == "offered" and got_b.offer is not None and got_b.offer.start == ten
        with pytest.raises(errors.OfferExpiredError):  # it lapsed: 410, never a second chance at it
            await w.eng.accept_offer(a.record.id)
        w.clock.now += 61
        assert await w.sweep() == 1
        assert ten in await w.free(w.tomorrow)  # nobody left: back to everyone
        decoded = await w.events()
        lapses = [e for e in decoded if isinstance(e, ev.WaitlistLapsed)]
        assert [x.data.id for x in lapses] == [a.record.id, b.record.id] and lapses[0].actor == "sweeper"
        assert [o.detail.cause for o in offers_of(decoded)] == ["cancel", "waitlist_lapse"]
        stats = await w.r.hgetall(keys.waitlist_stats(w.pid))
        assert stats[b"lapsed"] == b"2"
        check_offers(decoded, durations(w))

    run(redis_db, body, offer_seconds=60)


def test_two_offers_lapsing_in_one_sweep_each_go_to_the_other_entry(redis_db: str) -> None:
    """a holds the 10:00 offer, b the 11:00 one; both lapse and one sweep records both. Each interval goes to the
    next entry that has not had it: 10:00 to b, 11:00 to a. (The sweep offered each interval as soon as its own
    lapse was recorded: 10:00 found b still holding its offer and went back to everyone.)"""

    async def body(w: World) -> None:
        ten, eleven = w.at(w.tomorrow, "10:00"), w.at(w.tomorrow, "11:00")
        first, second = await w.book(ten), await w.book(eleven)
        a, b = await w.join(), await w.join()
        await w.eng.cancel(first)
        await w.eng.cancel(second)
        got_a, got_b = await w.entry(a.record.id), await w.entry(b.record.id)
        assert got_a.offer is not None and got_a.offer.start == ten
        assert got_b.offer is not None and got_b.offer.start == eleven
        w.clock.now += 61
        assert await w.sweep() == 2
        got_a, got_b = await w.entry(a.record.id), await w.entry(b.record.id)
        assert got_b.status == "offered" and got_b.offer is not None and got_b.offer.start == ten, got_b
        assert got_a.status == "offered" and got_a.offer is not None and got_a.offer.start == eleven, got_a
        check_offers(await w.events(), durations(w))

    run(redis_db, body, offer_seconds=60)


def test_declining_a_lapsed_offer_answers_offer_expired_and_the_lapse_is_recorded_once(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        appt = await w.book(ten)
        a, b = await w.join(), await w.join()
        await w.eng.cancel(appt)
        assert (await w.entry(a.record.id)).offer is not None
        w.clock.now += 61  # the offer ran out; the sweeper has not tidied it yet
        with pytest.raises(errors.OfferExpiredError):
            await w.eng.decline_offer(a.record.id)
        assert (await w.entry(b.record.id)).offer is None  # nothing was passed on as a decline
        with pytest.raises(errors.OfferExpiredError):  # again, and after the sweeper recorded the lapse
            await w.eng.decline_offer(a.record.id)
        assert await w.sweep() == 1
        with pytest.raises(errors.OfferExpiredError):
            await w.eng.decline_offer(a.record.id)
        decoded = await w.events()
        tags = [e.__struct_config__.tag for e in decoded]
        assert "waitlist_decline" not in tags and tags.count("waitlist_lapse") == 1
        (lapse,) = [e for e in decoded if isinstance(e, ev.WaitlistLapsed)]
        assert lapse.data.id == a.record.id
        stats = await w.r.hgetall(keys.waitlist_stats(w.pid))
        assert stats[b"lapsed"] == b"1" and b"declined" not in stats
        got_b = await w.entry(b.record.id)  # the lapse passed it on, as a lapse
        assert got_b.offer is not None and got_b.offer.start == ten
        assert [o.detail.cause for o in offers_of(decoded)] == ["cancel", "waitlist_lapse"]
        check_offers(decoded, durations(w))

    run(redis_db, body, offer_seconds=60)


def test_release_and_an_ordinary_expiry_go_to_the_waitlist_never_to_a_searcher_first(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten, eleven = w.at(w.tomorrow, "10:00"), w.at(w.tomorrow, "11:00")
        released, _ = await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(ten))
        expiring, _ = await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(eleven))
        a, b = await w.join(), await w.join()
        await w.eng.release_hold(released.id)
        assert (await w.entry(a.record.id)).offer is not None
        w.clock.now += 301  # the ordinary hold expired: withheld for the waitlist until the sweeper offers it
        free = await w.free(w.tomorrow)
        assert ten not in free and eleven not in free
        with pytest.raises(errors.SlotUnavailableError) as exc:
            await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(eleven))
        assert exc.value.reason == "taken"
        assert await w.sweep() == 1
        got_b = await w.entry(b.record.id)
        assert got_b.offer is not None and got_b.offer.start == eleven
        causes = [o.detail.cause for o in offers_of(await w.events())]
        assert causes == ["release", "expire"]

    run(redis_db, body)


def test_several_intervals_freed_in_one_call_each_get_their_own_offers_oldest_first(redis_db: str) -> None:
    """Issue 22 item 5: two 2-hour holds expire in one sweep (one expire call, one kit with 2 x OFFER_IDS hold
    ids); 12 waiting 15-minute entries. Each freed interval makes its own OFFER_IDS offers (the first no longer
    takes them all), to the oldest entries, in the order the intervals are freed; the rest waits."""

    async def body(w: World) -> None:
        day = w.tomorrow
        ten, two = w.at(day, "10:00"), w.at(day, "14:00")
        for start in (ten, two):
            await w.eng.hold(w.prs[0].id, w.vts[120].id, w.instant(start))
        entries = [await w.join(minutes=15, pr=0) for _ in range(12)]
        w.clock.now += 301
        assert await w.sweep() == 2
        got = {e.record.id: (await w.entry(e.record.id)).offer for e in entries}
        offered = [e.record.id for e in entries if got[e.record.id] is not None]
        assert offered == [e.record.id for e in entries[:8]]  # the eight oldest, none of the four youngest
        starts = sorted(o.start for o in got.values() if o is not None)
        in_first = [s for s in starts if ten <= s < ten + 7200]
        in_second = [s for s in starts if two <= s < two + 7200]
        assert len(in_first) == scripts.OFFER_IDS and len(in_second) == scripts.OFFER_IDS
        # the rest of each interval is free to all, as once the entries' share is spent
        free = await w.free(day, minutes=15)
        assert ten + scripts.OFFER_IDS * 900 in free and two + scripts.OFFER_IDS * 900 in free
        check_offers(await w.events(), durations(w))

    run(redis_db, body, durations=(120, 15), practitioners=1)


def test_without_a_waitlist_an_expired_hold_frees_at_once(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        await w.eng.hold(w.prs[0].id, w.vts[30].id, w.instant(ten))
        w.clock.now += 301
        assert ten in await w.free(w.tomorrow)  # invariant 3, exactly as without the waitlist

    run(redis_db, body)


def test_reschedule_away_offers_the_old_interval(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten, two = w.at(w.tomorrow, "10:00"), w.at(w.tomorrow, "14:00")
        appt = await w.book(ten)
        entry = await w.join(pr=0)
        target, _ = await w.eng.hold(w.prs[1].id, w.vts[30].id, w.instant(two))
        await w.eng.reschedule(appt, target.id)
        got = await w.entry(entry.record.id)
        assert got.offer is not None and got.offer.start == ten
        assert offers_of(await w.events())[0].detail.cause == "reschedule"

    run(redis_db, body)


def test_a_schedule_that_opens_time_offers_it(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        entry = await w.join(pr=0, from_time="18:00", to_time="20:00")  # after hours: nothing there yet
        assert entry.status == "waiting"
        week = [WeeklyWindow(d, "08:00", "19:00") for d in timeutil.WEEKDAYS]
        await w.eng.put_schedule(w.prs[0].id, Schedule(weekly=week, horizon_days=10, min_notice_minutes=60))
        got = await w.entry(entry.record.id)
        assert got.offer is not None and got.offer.start == w.at(day, "18:00")
        assert offers_of(await w.events())[0].detail.cause == "schedule"

    run(redis_db, body)


def test_a_freed_30_minute_interval_makes_two_15_minute_offers_where_they_fit(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        nine45, ten, ten15, ten30 = (w.at(day, t) for t in ("09:45", "10:00", "10:15", "10:30"))
        await w.book(nine45, minutes=15)  # neighbours taken: only the freed interval is free
        appt = await w.book(ten)
        await w.book(ten30, minutes=15)
        late = await w.join(minutes=15, from_time="10:15", to_time="10:30")  # only 10:15 fits it
        long = await w.join(minutes=30, pr=1)  # another practitioner: never offered this one
        early = await w.join(minutes=15)
        third = await w.join(minutes=15)
        await w.eng.cancel(appt)
        got = {e.record.id: (await w.entry(e.record.id)).offer for e in (late, long, early, third)}
        assert got[late.record.id] is not None and got[late.record.id].start == ten15
        assert got[early.record.id] is not None and got[early.record.id].start == ten
        assert got[long.record.id] is None and got[third.record.id] is None  # nothing left for them
        assert await w.free(day, minutes=15) == [s for s in await w.free(day, minutes=15) if not ten <= s < ten30]
        check_offers(await w.events(), durations(w))

    run(redis_db, body)


def test_an_entry_never_holds_two_offers_nor_gets_one_interval_twice(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        ten, eleven = w.at(day, "10:00"), w.at(day, "11:00")
        a1, a2 = await w.book(ten), await w.book(eleven)
        only = await w.join()
        await w.eng.cancel(a1)
        await w.eng.cancel(a2)  # the entry holds an offer already: eleven is free to all
        got = await w.entry(only.record.id)
        assert got.offer is not None and got.offer.start == ten and eleven in await w.free(day)
        await w.eng.decline_offer(only.record.id)
        # ten is free again; booked and cancelled once more, it is never offered to this entry again
        again = await w.book(ten)
        await w.eng.cancel(again)
        assert (await w.entry(only.record.id)).offer is None and ten in await w.free(day)
        other = await w.book(eleven)  # another interval still is
        await w.eng.cancel(other)
        got = await w.entry(only.record.id)
        assert got.offer is not None and got.offer.start == eleven
        assert [o.detail.start for o in offers_of(await w.events())] == [ten, eleven]
        check_offers(await w.events(), durations(w))

    run(redis_db, body)


def test_leave_with_a_live_offer_passes_it_on(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        appt = await w.book(ten)
        a, b = await w.join(), await w.join()
        await w.eng.cancel(appt)
        left = await w.eng.leave_waitlist(a.record.id)
        assert left.status == "left" and left.offer is None
        got = await w.entry(b.record.id)
        assert got.offer is not None and got.offer.start == ten
        assert (await w.eng.leave_waitlist(a.record.id)).status == "left"  # again: nothing changes
        assert await w.r.zscore(keys.waitlist_queue(w.pid), a.record.id) is None
        decoded = await w.events()
        (leave,) = [e for e in decoded if isinstance(e, ev.WaitlistLeft)]
        assert leave.detail.start == ten and offers_of(decoded)[-1].detail.cause == "waitlist_leave"

    run(redis_db, body)


def test_entries_whose_window_passed_read_ended_and_leave_the_queue(redis_db: str) -> None:
    async def body(w: World) -> None:
        entry = await w.join()
        w.clock.now += 3 * 86400
        assert (await w.entry(entry.record.id)).status == "ended"
        assert await w.eng.waitlist.drop_ended(force=True) == 1
        assert await w.r.zcard(keys.waitlist_queue(w.pid)) == 0
        assert [e.status for e in await w.eng.list_waitlist(w.pid)] == ["ended"]

    run(redis_db, body)


def test_50_cancellations_and_50_entries_at_once_offer_exclusively_and_fairly(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        starts = [w.at(day, "08:00") + i * 1800 for i in range(20)] + [w.at(day, "08:00") + i * 1800 for i in range(20)]
        appts = [await w.book(s, pr=i // 20) for i, s in enumerate(starts)]
        extra_day = day + dt.timedelta(days=1)
        appts += [await w.book(w.at(extra_day, "08:00") + i * 1800) for i in range(10)]
        hours = ["08:00", "10:00", "12:00", "14:00"]

        async def join(i: int) -> None:
            await w.join(
                minutes=30 if i % 3 else 15, pr=None if i % 4 else i % 2, from_date=day, to_date=extra_day,
                from_time=hours[i % 4], to_time="18:00",
            )  # fmt: skip

        for i in range(25):  # half of them wait already, half join while the cancellations run
            await join(i)
        mixed = [w.eng.cancel(a) for a in appts]
        for i in range(25, 50):
            mixed.insert(2 * (i - 25), join(i))
        await asyncio.gather(*mixed)
        decoded = await w.events()
        made = check_offers(decoded, durations(w))
        assert made >= 20
        live = [e for e in await w.eng.list_waitlist(w.pid) if e.offer is not None]
        assert len(live) == made  # one offer per entry at most, none lost
        for pr in w.prs:  # no two claims overlap
            members = await w.r.zrange(keys.claims(w.pid, pr.id), 0, -1, withscores=True)
            spans = sorted((int(s), int(m.decode().split("|")[2])) for m, s in members)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans

    run(redis_db, body)


# ----------------------------------------------------------------- bad input: refused, nothing stored
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"from_date": "yesterday"}, errors.InvalidRequestError),
        ({"to_date": "before"}, errors.InvalidRequestError),
        ({"to_date": "beyond"}, errors.InvalidRequestError),
        ({"from_time": "12:00", "to_time": "08:00"}, errors.InvalidRequestError),
        ({"from_time": "12:00", "to_time": "12:00"}, errors.InvalidRequestError),
        ({"visit_type": "unknown"}, errors.NotFoundError),
        ({"practitioner": "unknown"}, errors.NotFoundError),
    ],
)
def test_a_bad_join_is_refused_and_nothing_is_stored(
    redis_db: str, change: dict[str, str], error: type[Exception]
) -> None:
    async def body(w: World) -> None:
        from engine.ids import new_practitioner_id, new_visit_type_id
        from engine.model import Patient, WaitlistRequest

        day = w.tomorrow
        dates = {"yesterday": day - dt.timedelta(days=2), "before": day - dt.timedelta(days=1),
                 "beyond": day + dt.timedelta(days=20)}  # fmt: skip
        req = WaitlistRequest(
            visit_type_id=new_visit_type_id(w.pid) if change.get("visit_type") else w.vts[30].id,
            practitioner_id=new_practitioner_id(w.pid) if change.get("practitioner") else None,
            from_date=dates[change["from_date"]] if "from_date" in change else day,
            to_date=dates[change["to_date"]] if "to_date" in change else day,
            from_time=change.get("from_time"),
            to_time=change.get("to_time"),
            patient=Patient(name="P", email="p@example.org"),
        )
        with pytest.raises(error):
            await w.eng.join_waitlist(w.pid, req)
        assert await w.r.hlen(keys.waitlist_entries(w.pid)) == 0 and await w.r.zcard(keys.waitlist_queue(w.pid)) == 0

    run(redis_db, body)


def test_a_visit_type_added_meanwhile_makes_the_script_ask_for_a_new_kit(redis_db: str) -> None:
    async def body(w: World) -> None:
        ten = w.at(w.tomorrow, "10:00")
        appt = await w.book(ten)
        await w.join()
        await w.eng.catalog.visit_type_lengths(w.pid)  # cached now
        await w.eng.catalog.add_visit_type(w.pid, "45 min", 45)  # another process adds one: this cache is stale
        appointment, _ = await w.eng.get_appointment(appt)
        stale = await w.eng.appointments.offers.kit(w.pid, w.prs[0].id)
        call = scripts.cancel_call(
            now_ms=w.eng.now_ms(),
            practice_id=w.pid,
            appointment_id=appt,
            practitioner_id=appointment.practitioner_id,
            reason="",
            ctx=SYSTEM,
            kit=stale,
        )
        without = scripts.cancel_call(
            now_ms=w.eng.now_ms(),
            practice_id=w.pid,
            appointment_id=appt,
            practitioner_id=appointment.practitioner_id,
            reason="",
            ctx=SYSTEM,
        )
        with pytest.raises(errors.OfferKitError):
            await scripts.cancel(w.eng.lua, without)
        with pytest.raises(errors.OfferKitError):
            await scripts.cancel(w.eng.lua, call)
        assert (await w.eng.get_appointment(appt))[0].status == "booked"  # nothing changed
        await w.eng.cancel(appt)  # the engine reads the visit types again and offers
        assert len(offers_of(await w.events())) == 1

    run(redis_db, body)


def test_releasing_an_offer_hold_declines_it_and_rescheduling_onto_one_accepts_it(redis_db: str) -> None:
    async def body(w: World) -> None:
        day = w.tomorrow
        ten, two = w.at(day, "10:00"), w.at(day, "14:00")
        appt, moving = await w.book(ten), await w.book(two)
        a, b = await w.join(), await w.join()
        await w.eng.cancel(appt)
        offer = (await w.entry(a.record.id)).offer
        assert offer is not None
        assert await w.eng.release_hold(offer.hold_id) == "released"  # DELETE /v1/holds/{id} of the offer
        assert (await w.entry(a.record.id)).status == "waiting"
        got_b = (await w.entry(b.record.id)).offer
        assert got_b is not None and got_b.start == ten  # passed on, as a decline
        moved = await w.eng.reschedule(moving, got_b.hold_id)  # b's patient moves an appointment onto the offer
        assert moved.start == ten
        done = await w.entry(b.record.id)
        assert (done.status, done.record.appointment_id) == ("booked", moving)
        assert (await w.entry(a.record.id)).offer is not None  # and 14:00, given back, went to a
        tags = [e.__struct_config__.tag for e in await w.events()]
        assert "waitlist_decline" in tags and tags.count("waitlist_accept") == 1
        check_offers(await w.events(), durations(w))

    run(redis_db, body)


def test_windows_become_utc_spans_across_dst_changes() -> None:
    from engine.model import Patient, WaitlistRequest
    from engine.waitlist import spans

    berlin = timeutil.zone("Europe/Berlin")

    def req(first: dt.date, last: dt.date, **kw: object) -> WaitlistRequest:
        return WaitlistRequest(visit_type_id="v", from_date=first, to_date=last, patient=Patient(name="P", email="p@x"),
                               **kw)  # type: ignore[arg-type]  # fmt: skip

    spring, autumn = dt.date(2030, 3, 31), dt.date(2030, 10, 27)
    at = lambda d, m: timeutil.wall_to_epoch(d, m, berlin, is_end=False)  # noqa: E731
    # the whole local day, 23 and 25 hours long: one span each, consecutive days merged into one
    assert spans(req(spring, spring), "Europe/Berlin") == [[at(spring, 0), at(spring + dt.timedelta(1), 0)]]
    whole = spans(req(spring, spring + dt.timedelta(1)), "Europe/Berlin")
    assert whole == [[at(spring, 0), at(spring + dt.timedelta(2), 0)]] and whole[0][1] - whole[0][0] == 47 * 3600
    assert spans(req(autumn, autumn), "Europe/Berlin")[0][1] - at(autumn, 0) == 25 * 3600
    # 02:00-02:30 does not exist on the spring day: no span; 02:30-04:00 starts at the first instant after the gap
    assert spans(req(spring, spring, from_time="02:00", to_time="02:30"), "Europe/Berlin") == []
    gap = spans(req(spring, spring, from_time="02:30", to_time="04:00"), "Europe/Berlin")
    assert gap == [[at(spring, 180), at(spring, 240)]] and gap[0][1] - gap[0][0] == 3600
    # the repeated hour of the autumn day: its first occurrence, so 02:00-03:00 lasts two elapsed hours
    twice = spans(req(autumn, autumn, from_time="02:00", to_time="03:00"), "Europe/Berlin")
    assert twice[0][1] - twice[0][0] == 2 * 3600
    # weekdays pick the dates: a Monday-only window over a week is one span
    week = spans(req(dt.date(2030, 3, 18), dt.date(2030, 3, 24), weekdays=["mon"], from_time="08:00",
                     to_time="12:00"), "Europe/Berlin")  # fmt: skip
    assert week == [[at(dt.date(2030, 3, 18), 480), at(dt.date(2030, 3, 18), 720)]]
