"""The waitlist's durable side (docs/waitlist.md): entries written behind to PostgreSQL newer-only by version,
their audit rows in the practice's chain. Events are appended by hand (tests/support/waitlist_events.py) as the
waitlist scripts write them."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from typing import Any

import msgspec
import pytest
import redis as redis_sync
import redis.asyncio as aioredis
from litestar.testing import TestClient
from sqlalchemy import select, text

from api.app import create_app
from engine import keys
from engine import restore as rs
from engine.events import from_stream
from engine.model import WaitlistRecord
from engine.service import BookingEngine
from persistence import audit, effects, waitlist_rows
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from persistence.tables import waitlist_entries
from tests.support import waitlist_events as wl
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration
SPANS = [[1_800_000_000, 1_800_014_400], [1_800_086_400, 1_800_100_800]]


@pytest.fixture
def world(redis_db: str) -> Any:
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    url = fresh_database("booking_wl_persist")
    db = make_engine(url)
    app = create_app(settings_for(redis_db, database_url=url))
    with TestClient(app) as c:
        c.headers.update(AUTH)
        ctx = setup_practice(c, durations=(30,))
        yield {"client": c, "redis": r, "db": db, "ctx": ctx, "persister": Persister(r, db, consumer="t1")}
    db.dispose()
    r.close()


def rows(db: Any, sql: str, **params: Any) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(text(sql), params).all())


def stored(db: Any, entry_id: str) -> Any:
    with db.connect() as c:
        m = c.execute(select(waitlist_entries).where(waitlist_entries.c.id == entry_id)).mappings().one()
    return waitlist_rows.record(m)


def life(ctx: dict[str, Any]) -> list[Any]:
    """One entry's life as its events carry it: join, offer, decline, offer, accept; and a second entry that
    joins, is offered, lapses and leaves."""
    pid, vt, pr = ctx["practice_id"], ctx["visit_types"][30], ctx["practitioners"][0]
    now = int(time.time() * 1000)
    a = wl.entry(
        pid, vt, 1, SPANS, now, practitioner_id=pr, weekdays=["mon", "tue"], from_time="08:00", to_time="12:00"
    )
    b = wl.entry(pid, vt, 2, SPANS, now + 1)
    h1, h2, h3 = (f"{pr}.h{'x' * 21}{i}" for i in range(3))
    a1 = wl.offered(a, h1, pr, SPANS[0][0], SPANS[0][0] + 1800, now + 900_000, now + 10)
    a2 = wl.changed(a1, now + 20, status="waiting", offer=None)
    a3 = wl.offered(a2, h2, pr, SPANS[1][0], SPANS[1][0] + 1800, now + 900_030, now + 30)
    a4 = wl.changed(a3, now + 40, status="booked", offer=None, appointment_id=f"{pid}.a{'y' * 16}")
    b1 = wl.offered(b, h3, pr, SPANS[0][0], SPANS[0][0] + 1800, now + 900_020, now + 21)
    b2 = wl.changed(b1, now + 50, status="waiting", offer=None, lapsed_ms=now + 50)
    b3 = wl.changed(b2, now + 60, status="left")
    return [
        wl.event("waitlist_join", a, now),
        wl.event("waitlist_join", b, now + 1),
        wl.event("waitlist_offer", a1, now + 10, expires_ms=now + 900_000, cause="cancel"),
        wl.event("waitlist_decline", a2, now + 20, hold_id=h1, start=SPANS[0][0], end=SPANS[0][0] + 1800),
        wl.event("waitlist_offer", b1, now + 21, expires_ms=now + 900_020, cause="waitlist_decline"),
        wl.event("waitlist_offer", a3, now + 30, expires_ms=now + 900_030, cause="release"),
        wl.event("waitlist_accept", a4, now + 40, hold_id=h2, start=SPANS[1][0], end=SPANS[1][0] + 1800,
                 appointment_id=a4.appointment_id),
        wl.event("waitlist_lapse", b2, now + 50, hold_id=h3, start=SPANS[0][0], end=SPANS[0][0] + 1800),
        wl.event("waitlist_leave", b3, now + 60),
    ]  # fmt: skip


def test_every_waitlist_event_stores_the_entry_and_its_audit_row_and_replays_change_nothing(world: Any) -> None:
    c, db, r, p, ctx = world["client"], world["db"], world["redis"], world["persister"], world["ctx"]
    events = life(ctx)
    for e in events:
        wl.append(r, e)
    assert p.drain() > 0
    a, b = events[-3].data, events[-1].data
    assert stored(db, a.id) == a  # the whole record, exactly: booked, v5
    assert stored(db, b.id) == b  # left, v4, with what it had
    assert (a.status, a.version, b.status, b.version) == ("booked", 5, "left", 4)
    actions = [x[0] for x in rows(db, "select action from audit_events order by chain_index")]
    assert actions[-9:] == [e.__struct_config__.tag for e in events]
    assert audit.verify(db, out=lambda _: None)
    n_audit = rows(db, "select count(*) from audit_events")[0][0]
    # the whole stream delivered again: nothing changes
    r.xgroup_setid(keys.events(ctx["practice_id"]), keys.PERSIST_GROUP, "0")
    p.drain()
    assert rows(db, "select count(*) from audit_events")[0][0] == n_audit
    assert stored(db, a.id) == a and stored(db, b.id) == b
    # the audit trail: filtered by each waitlist action, with no patient data
    pid = ctx["practice_id"]
    for e in events:
        tag = e.__struct_config__.tag
        got = c.get("/v1/audit", params={"practice_id": pid, "action": tag})
        assert got.status_code == 200, got.text
        items = got.json()["items"]
        assert items and {i["action"] for i in items} == {tag}
    offers = c.get("/v1/audit", params={"practice_id": pid, "action": "waitlist_offer"}).json()["items"]
    assert [o["detail"]["cause"] for o in offers] == ["cancel", "waitlist_decline", "release"]
    assert [o["detail"]["entry_id"] for o in offers] == [a.id, b.id, a.id]
    every = c.get("/v1/audit", params={"practice_id": pid, "limit": 1000}).json()["items"]
    # no patient data (ids are random hex and urlsafe text: "ada" alone may occur in one by chance)
    assert every
    assert "lovelace" not in str(every).lower() and "example.org" not in str(every).lower()
    assert c.get("/v1/audit", params={"action": "waitlist_nope"}).status_code == 422


def test_an_older_copy_delivered_after_a_newer_one_changes_nothing(world: Any) -> None:
    """Invariant 10 for entries: each upsert is newer-only by version, whatever order copies arrive in."""
    db, ctx = world["db"], world["ctx"]
    events = life(ctx)
    mine = [e for e in events if e.data.id == events[0].data.id]
    with db.begin() as conn:
        for e in reversed(mine):  # newest first, then every older copy
            effects.waitlist_entry(conn, e)
    assert stored(db, mine[-1].data.id) == mine[-1].data
    with db.begin() as conn:  # an equal version again (a replay) leaves the row as it is
        effects.waitlist_entry(
            conn, msgspec.structs.replace(mine[-1], data=msgspec.structs.replace(mine[-1].data, status="left"))
        )
    assert stored(db, mine[-1].data.id).status == "booked"


def test_the_stored_row_gives_the_record_back_exactly(world: Any) -> None:
    """What reconciliation relies on: record(row(r)) == r, offers, nulls and lists included, and what the
    stream carried decodes to the same record."""
    r, ctx = world["redis"], world["ctx"]
    for e in life(ctx):
        rec = e.data
        row = waitlist_rows.row(rec)
        assert waitlist_rows.record(row) == rec
        entry_id = wl.append(r, e)
        raw = r.xrange(keys.events(ctx["practice_id"]), entry_id, entry_id)[0][1]
        assert from_stream(entry_id, raw).data == rec


# ----------------------------------------------------------------- reconciliation after Redis lost its data
def reconcile_now(redis_url: str, db: Any, said: list[str]) -> Any:
    ar = aioredis.Redis.from_url(redis_url)
    sr = redis_sync.Redis.from_url(redis_url)

    async def run() -> Any:
        try:
            return await reconcile(BookingEngine(ar, settings_for(redis_url)), sr, db, out=said.append)
        finally:
            await ar.aclose()

    try:
        return asyncio.run(run())
    finally:
        sr.close()


def redis_entries(r: Any, pid: str) -> dict[str, WaitlistRecord]:
    raw = r.hgetall(keys.waitlist_entries(pid))
    return {k.decode(): msgspec.json.decode(v, type=WaitlistRecord) for k, v in raw.items()}


def test_reconcile_puts_entries_and_live_offers_back_and_never_an_offer_that_cannot_be_held(
    redis_db: str, world: Any
) -> None:
    c, db, r, p, ctx = world["client"], world["db"], world["redis"], world["persister"], world["ctx"]
    pid, vt, pr = ctx["practice_id"], ctx["visit_types"][30], ctx["practitioners"][0]
    day = next_weekday(2)
    slots = search(c, pid, vt, day)
    s = [int(dt.datetime.fromisoformat(x["start"]).timestamp()) for x in slots[:8:2]]
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slots[4]["start"]}).json()
    booked = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": {"name": "B", "email": "b@example.org"}})
    assert booked.status_code == 201
    now = int(time.time() * 1000)
    now_s = now // 1000
    live_spans, past_spans = [[now_s, now_s + 30 * 86400]], [[now_s - 2 * 86400, now_s - 86400]]
    hid = [f"{pr}.h{secrets.token_urlsafe(16)}" for _ in range(3)]
    base = {n: wl.entry(pid, vt, n, live_spans, now + n) for n in range(1, 8)}
    a = base[1]  # waiting
    b = wl.offered(base[2], hid[0], pr, s[0], s[0] + 1800, now + 600_000, now + 10)  # a live offer
    cc = wl.offered(base[3], hid[1], pr, s[1], s[1] + 1800, now - 1, now + 11)  # expired while Redis was down
    d = wl.offered(base[4], hid[2], pr, s[2], s[2] + 1800, now + 600_000, now + 12)  # over the booking
    e = wl.changed(base[5], now + 13, status="booked", appointment_id=booked.json()["id"])
    f = wl.changed(base[6], now + 14, status="left")
    g = msgspec.structs.replace(base[7], spans=past_spans)  # its window passed: reads ended
    entries = [a, b, cc, d, e, f, g]
    for x in entries:
        wl.append(r, wl.event("waitlist_offer" if x.offer else "waitlist_join", x, x.updated_ms))
    p.drain()
    r.flushdb()
    said: list[str] = []
    report = reconcile_now(redis_db, db, said)

    got = redis_entries(r, pid)
    assert set(got) == {x.id for x in entries}
    assert got[b.id] == b and got[e.id] == e and got[f.id] == f and got[g.id] == g
    # issue 22: the expired offer's interval goes to the waitlist first (a, the oldest waiting entry it fits), not
    # free to everyone as before
    assert got[a.id].status == "offered" and got[a.id].offer is not None and got[a.id].offer.start == s[1]
    assert msgspec.structs.replace(got[a.id], status="waiting", offer=None, version=a.version, had=[],
                                   updated_ms=a.updated_ms) == a  # fmt: skip
    for lost in (cc, d):  # back to waiting, at the same version, the interval still in what it had
        assert got[lost.id] == msgspec.structs.replace(lost, status="waiting", offer=None)
    queue = [(m.decode(), int(sc)) for m, sc in r.zrange(keys.waitlist_queue(pid), 0, -1, withscores=True)]
    assert queue == [(a.id, 1), (b.id, 2), (cc.id, 3), (d.id, 4)]  # booked, left, ended: not queued
    assert int(r.hget(keys.waitlist_stats(pid), "joined")) >= 7  # the next join queues after every entry
    # the live offer is its hold again: exclusive (not searchable, not holdable), live until its expiry
    hold = r.hgetall(keys.hold(pid, hid[0]))
    assert hold[b"state"] == b"held" and hold[b"entry_id"] == b.id.encode()
    assert int(hold[b"expires_ms"]) == b.offer.expires_ms  # type: ignore[union-attr]
    assert r.zscore(keys.hold_expiries(pid), hid[0]) == b.offer.expires_ms  # type: ignore[union-attr]
    assert c.get(f"/v1/holds/{hid[0]}").json()["expires_at"]
    free = {int(dt.datetime.fromisoformat(x["start"]).timestamp()) for x in search(c, pid, vt, day)}
    assert s[0] not in free and s[2] not in free and s[1] not in free  # offered, booked, offered to a
    taken = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slots[0]["start"]})
    assert taken.status_code == 409
    assert r.hgetall(keys.hold(pid, hid[1])) == {} and r.hgetall(keys.hold(pid, hid[2])) == {}
    text_said = "\n".join(said)
    assert f"waitlist entry {b.id} (offered v2) with its offer {hid[0]}" in text_said
    assert f"its offer {hid[1]} expired" in text_said and f"its offer {hid[2]} overlaps a claim" in text_said
    assert f"waitlist entry {g.id}" in text_said and "not queued" in text_said

    # again: nothing to repair; a newer copy in Redis (the live engine moved on) is kept and reported
    newer = wl.changed(got[a.id], now + 99, status="left", offer=None)  # a is at v2 now (its reconcile offer)
    wl.store(r, newer)
    said2: list[str] = []
    again = reconcile_now(redis_db, db, said2)
    assert not [x for x in again.restored if "waitlist" in x]
    assert redis_entries(r, pid)[a.id] == newer
    assert any(a.id in x and "v3" in x for x in again.redis_ahead)
    assert report.restored and not again.conflicts


def test_the_restore_script_never_replaces_a_copy_at_that_version_or_newer(redis_db: str, world: Any) -> None:
    """The race the reconciler's own version check cannot close: the live engine writes the entry between the
    reconciler's read and its restore. The script itself refuses (SKIP), whatever the caller believed."""
    r, ctx = world["redis"], world["ctx"]
    pid, vt = ctx["practice_id"], ctx["visit_types"][30]
    now = int(time.time() * 1000)
    old = wl.entry(pid, vt, 3, [[now // 1000, now // 1000 + 86400]], now)
    newer = wl.changed(old, now + 5, status="left")
    wl.store(r, newer)
    ar = aioredis.Redis.from_url(redis_db)

    async def restore(x: WaitlistRecord) -> tuple[str, str]:
        return await rs.restore_waitlist_entry(BookingEngine(ar, settings_for(redis_db)), x)

    async def body() -> list[tuple[str, str]]:
        try:
            return [await restore(old), await restore(newer), await restore(wl.changed(newer, now + 9))]
        finally:
            await ar.aclose()

    assert asyncio.run(body()) == [("SKIP", "2"), ("SKIP", "2"), ("OK", "stored")]
    assert redis_entries(r, pid)[old.id].version == 3
    assert r.zscore(keys.waitlist_queue(pid), old.id) is None  # left: never queued


def test_ended_entries_leave_redis_once_stored_and_are_read_from_the_database(world: Any) -> None:
    """Issue 22 item 2: booked, left and passed entries leave T:wl:entries (and the queue and index) once the
    database holds their version, after a grace period; the API then reads them from the database; live entries
    and entries whose last change is not stored yet stay."""
    from persistence.waitlist_tidy import GRACE_S, WaitlistTidy

    c, db, r, p, ctx = world["client"], world["db"], world["redis"], world["persister"], world["ctx"]
    pid = ctx["practice_id"]
    day = next_weekday(2)
    body = {"visit_type_id": ctx["visit_types"][30], "from_date": day.isoformat(), "to_date": day.isoformat(),
            "patient": {"name": "Lea", "email": "lea@example.org"}}  # fmt: skip
    left, live, late = (c.post(f"/v1/practices/{pid}/waitlist", json=body).json() for _ in range(3))
    assert c.delete(f"/v1/waitlist/{left['id']}").status_code == 204
    p.drain()
    assert c.delete(f"/v1/waitlist/{late['id']}").status_code == 204  # its leave not stored yet
    tidy = WaitlistTidy(r, db)
    assert tidy.run(now_s=time.time()).removed == 0  # within the grace period: kept
    report = tidy.run(now_s=time.time() + GRACE_S + 1)
    assert (report.removed, report.unstored) == (1, 1)
    assert r.hget(keys.waitlist_entries(pid), left["id"]) is None
    assert r.hget(keys.waitlist_entries(pid), live["id"]) is not None  # live: stays
    assert r.hget(keys.waitlist_entries(pid), late["id"]) is not None  # not stored yet: stays
    assert not any(left["id"].encode() in m for m in r.zrange(keys.waitlist_index(pid), 0, -1))
    manage = {"X-Manage-Token": left["manage_token"], "Authorization": ""}
    got = c.get(f"/v1/waitlist/{left['id']}", headers=manage)  # read from the database now
    assert got.status_code == 200 and got.json()["status"] == "left", got.text
    assert c.get(f"/v1/waitlist/{left['id']}", headers={"X-Manage-Token": "wrong", "Authorization": ""}).status_code in (
        403, 404)  # fmt: skip
    assert c.delete(f"/v1/waitlist/{left['id']}", headers=manage).status_code == 204  # again: nothing changes
    r2 = c.post(f"/v1/waitlist/{left['id']}/decline", json={}, headers=manage)
    assert r2.status_code == 409 and r2.json()["code"] == "no_offer", r2.text
    p.drain()
    assert tidy.run(now_s=time.time() + GRACE_S + 1).removed == 1  # its leave stored now: it goes too
