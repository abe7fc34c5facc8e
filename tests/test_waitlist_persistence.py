"""The waitlist's durable side (docs/waitlist.md): entries written behind to PostgreSQL newer-only by version,
their audit rows in the practice's chain. Events are appended by hand (tests/support/waitlist.py) as the
waitlist scripts write them."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
import redis as redis_sync
from litestar.testing import TestClient
from sqlalchemy import select, text

from api.app import create_app
from engine import keys
from engine.events import from_stream
from persistence import audit, effects, waitlist_rows
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.tables import waitlist_entries
from tests.support import waitlist as wl
from tests.support.config import AUTH, REDIS_URL, settings_for
from tests.support.databases import fresh_database
from tests.support.http import setup_practice

pytestmark = pytest.mark.integration
RURL = REDIS_URL.rsplit("/", 1)[0] + "/15"  # a Redis database of this module's own
SPANS = [[1_800_000_000, 1_800_014_400], [1_800_086_400, 1_800_100_800]]


@pytest.fixture
def world() -> Any:
    r = redis_sync.Redis.from_url(RURL)
    r.flushdb()
    url = fresh_database("booking_wl_persist")
    db = make_engine(url)
    app = create_app(settings_for(RURL, database_url=url))
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
    b2 = wl.changed(b1, now + 50, status="waiting", offer=None)
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
    assert "ada" not in str(every).lower()
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
