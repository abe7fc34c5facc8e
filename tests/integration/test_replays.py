"""Invariant 10 of DESIGN.md, "Replays and retries change nothing", where the persister lives: a replayed
stream entry changes nothing, a revocation is final whatever the order its events arrive in, and an event
is never taken for a replay because of its ``seq`` alone (Redis's audit counter can go back: a failover to a
lagging replica, an ``everysec`` crash, a restored backup). Real Redis and PostgreSQL throughout."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from engine import events as ev
from engine import keys
from persistence import audit, audit_rows, writer
from persistence.db import make_engine
from persistence.persister import HELD, Persister
from tests.integration.test_persistence import book_some, rows, run_reconcile
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import search

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Any:
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    db = make_engine(fresh_database("booking_replays"))
    with TestClient(create_app(settings_for(redis_db, database_url=str(db.url)))) as c:
        c.headers.update(AUTH)
        persister = Persister(r, db, consumer="t1")
        yield {"client": c, "redis": r, "db": db, "persister": persister, "redis_url": redis_db}
    db.dispose()
    r.close()


def stream_events(r: Any, practice_id: str) -> list[ev.Event]:
    return [ev.from_stream(i, f) for i, f in r.xrange(keys.events(practice_id))]


def store(db: Any, *events: ev.Event) -> writer.Applied:
    with db.begin() as conn:
        return writer.apply(conn, list(events))


def key_row(db: Any, key_id: str) -> Any:
    return rows(db, "select revoked_ms from api_keys where id = :k", k=key_id)


def staff_answer(c: Any, practice_id: str, key: str) -> int:
    return int(c.get(f"/v1/audit?practice_id={practice_id}", headers={"Authorization": f"Bearer {key}"}).status_code)


def forget_redis_and_reconcile(world: Any) -> list[str]:
    """Redis loses everything (its tombstones too): only the database can say the key is revoked."""
    world["redis"].flushdb()
    said: list[str] = []
    asyncio.run(run_reconcile(world["redis_url"], world["db"], said))
    return said


# ---------------------------------------------------------------- issue 11, item 1: a revocation is final
def test_a_replayed_create_of_a_revoked_key_leaves_it_revoked_and_reconciliation_does_not_restore_it(
    world: Any,
) -> None:
    c, r, db = world["client"], world["redis"], world["db"]
    pid = c.post("/v1/practices", json={"name": "Keys", "timezone": "Europe/Paris"}).json()["id"]
    made = c.post(f"/v1/practices/{pid}/api-keys").json()
    assert staff_answer(c, pid, made["key"]) == 200
    # persister A stores the create and dies before acknowledging it
    a = Persister(r, db, consumer="a")
    a.refresh_streams(force=True)
    with db.begin() as conn:
        writer.apply(conn, [e for _, e in a.decode(a._read(">", None))])
    assert key_row(db, made["id"]) == [(None,)]
    # the key is revoked; persister B stores the revocation, then claims A's entries and replays the create
    assert c.delete(f"/v1/practices/{pid}/api-keys/{made['id']}").status_code == 204
    b = Persister(r, db, consumer="b")
    b.refresh_streams(force=True)
    assert b._write(b._read(">", None)) == 1  # the revocation
    assert key_row(db, made["id"])[0][0] is not None
    assert b.claim_abandoned(0) == 2  # A's practice and key creates, replayed after the revocation
    assert b._write(b._read("0", None)) == 2
    assert r.xpending(keys.events(pid), keys.PERSIST_GROUP)["pending"] == 0
    revoked = key_row(db, made["id"])
    assert revoked[0][0] is not None
    # every event delivered once more: nothing moves
    r.xgroup_setid(keys.events(pid), keys.PERSIST_GROUP, "0")
    b.drain()
    assert key_row(db, made["id"]) == revoked
    said = forget_redis_and_reconcile(world)
    assert not any(made["id"] in line for line in said), said
    assert staff_answer(c, pid, made["key"]) == 401


def test_a_revocation_stored_before_its_create_stays_final(world: Any) -> None:
    """Two persisters: the one holding the revocation commits first."""
    c, r, db = world["client"], world["redis"], world["db"]
    pid = c.post("/v1/practices", json={"name": "Keys", "timezone": "Europe/Paris"}).json()["id"]
    made = c.post(f"/v1/practices/{pid}/api-keys").json()
    assert c.delete(f"/v1/practices/{pid}/api-keys/{made['id']}").status_code == 204
    events = stream_events(r, pid)
    create = next(e for e in events if isinstance(e, ev.ApiKeySaved))
    revoke = next(e for e in events if isinstance(e, ev.ApiKeyRevoked))
    store(db, *(e for e in events if e.seq == 0 and not isinstance(e, ev.ApiKeySaved | ev.ApiKeyRevoked)))
    store(db, revoke)
    assert key_row(db, made["id"]) == [(revoke.at,)]
    store(db, create)
    store(db, create, revoke, create)  # and any replay after that
    assert key_row(db, made["id"]) == [(revoke.at,)]
    said = forget_redis_and_reconcile(world)
    assert not any(made["id"] in line for line in said), said
    assert staff_answer(c, pid, made["key"]) == 401


# ---------------------------------------------------------------- issue 11, item 5: seq behind the database
def lower_audit_seq(r: Any, practice_id: str, by: int = 10) -> None:
    r.hincrby(keys.audit(practice_id), "seq", -by)


def book(c: Any, ctx: dict[str, Any], start: str) -> dict[str, Any]:
    h = c.post(
        "/v1/holds",
        json={"practitioner_id": ctx["practitioners"][0], "visit_type_id": ctx["visit_types"][30], "start": start},
    )
    assert h.status_code == 201, h.text
    a = c.post(
        "/v1/appointments",
        json={"hold_id": h.json()["id"], "patient": {"name": "Ada L", "email": "ada@example.org"}},
    )
    assert a.status_code == 201, a.text
    return dict(a.json())


def free_starts(c: Any, ctx: dict[str, Any]) -> list[str]:
    return [s["start"] for s in search(c, ctx["practice_id"], ctx["visit_types"][30], ctx["day"])]


def chain(db: Any, practice_id: str) -> list[tuple[str, int, str | None]]:
    return [
        (str(x[0]), int(x[1]), x[2])
        for x in rows(
            db,
            "select action, seq, appointment_id from audit_events where practice_id = :p order by chain_index",
            p=practice_id,
        )
    ]


def test_a_booking_made_after_redis_audit_seq_went_back_is_stored_in_the_chain(world: Any) -> None:
    c, r, db, p = world["client"], world["redis"], world["db"], world["persister"]
    ctx, first = book_some(c, n=4)
    pid = ctx["practice_id"]
    p.drain()
    assert rows(db, "select last_seq from audit_heads where practice_id = :p", p=pid) == [(10,)]
    lower_audit_seq(r, pid)  # a failover to a replica 10 events behind: Redis numbers the next event 1 again
    late = book(c, ctx, free_starts(c, ctx)[-1])
    p.drain()
    # the 201 booking reached PostgreSQL, with its audit rows, after a row that records the rollback
    assert rows(db, "select status from appointments where id = :a", a=late["id"]) == [("booked",)]
    assert chain(db, pid)[10:] == [
        ("seq_rollback", 10, None),
        ("search", 1, None),
        ("hold", 2, None),
        ("book", 3, late["id"]),
    ]
    brk = rows(db, "select actor, detail from audit_events where action = 'seq_rollback'")
    assert brk[0][0] == audit_rows.BREAK_ACTOR
    assert msgspec.json.decode(brk[0][1])["chain_seq"] == 10 and msgspec.json.decode(brk[0][1])["redis_seq"] == 1
    assert r.xpending(keys.events(pid), keys.PERSIST_GROUP)["pending"] == 0
    assert audit.verify(db, out=lambda _: None)
    # Redis numbers new events after everything stored again; the jump is recorded too
    assert int(r.hget(keys.audit(pid), "seq")) == 10
    again = book(c, ctx, free_starts(c, ctx)[0])
    p.drain()
    assert rows(db, "select status from appointments where id = :a", a=again["id"]) == [("booked",)]
    assert chain(db, pid)[14:] == [
        ("seq_gap", 3, None),
        ("search", 11, None),
        ("hold", 12, None),
        ("book", 13, again["id"]),
    ]
    assert rows(db, "select last_seq from audit_heads where practice_id = :p", p=pid) == [(13,)]
    assert audit.verify(db, out=lambda _: None)
    # and every entry delivered once more changes nothing
    n_rows = len(chain(db, pid))
    r.xgroup_setid(keys.events(pid), keys.PERSIST_GROUP, "0")
    p.drain()
    assert len(chain(db, pid)) == n_rows
    assert r.xpending(keys.events(pid), keys.PERSIST_GROUP)["pending"] == 0
    assert {a["id"] for a in [*first, late, again]} == {x[0] for x in rows(db, "select id from appointments")}


def test_after_a_rollback_two_persisters_still_store_in_stream_order(world: Any) -> None:
    """The events after a rollback do not follow the chain's seq: those a stalled persister holds must still
    be stored before those a second persister reads after them."""
    c, r, db = world["client"], world["redis"], world["db"]
    ctx, _ = book_some(c, n=1)
    pid = ctx["practice_id"]
    Persister(r, db, consumer="t0").drain()
    lower_audit_seq(r, pid, by=3)
    starts = free_starts(c, ctx)
    a = Persister(r, db, consumer="a", batch=2)
    b = Persister(r, db, consumer="b", batch=100)
    a.refresh_streams(force=True)
    b.refresh_streams(force=True)
    late = book(c, ctx, starts[-1])
    first = a._read(">", None)  # a takes the search and the hold and stalls
    assert [ev.from_stream(i, f).__struct_config__.tag for _, i, f in first] == ["search", "hold"]
    book(c, ctx, starts[0])
    assert b._write(b._read(">", None)) == 0  # its entries must wait for a's
    assert rows(db, "select count(*) from appointments where id = :a", a=late["id"]) == [(0,)]
    assert a._write(first) == 2
    b.step(block=False)
    assert [x[0] for x in chain(db, pid)][4:] == ["seq_rollback", "search", "hold", "book", "hold", "book"]
    assert rows(db, "select count(*) from appointments")[0][0] == 3
    assert audit.verify(db, out=lambda _: None)


def test_an_entry_id_stored_with_other_content_is_held_back_loudly(world: Any) -> None:
    c, r, db, p = world["client"], world["redis"], world["db"], world["persister"]
    ctx, _ = book_some(c, n=1)
    pid = ctx["practice_id"]
    p.drain()
    stored = next(e for e in stream_events(r, pid) if isinstance(e, ev.AppointmentBooked))
    other = msgspec.structs.replace(stored, actor="public:someone-else")
    done = store(db, other)
    assert writer.audit_id(other) not in done and writer.audit_id(other) in done.held
    p._after(done)
    assert writer.audit_id(other) in c.get("/readyz").json()["persister_held"]
    assert "booking_persister_held_events 1.0" in c.get("/metrics").text
    assert store(db, stored) == {writer.audit_id(stored)}  # the stored event itself is a replay
    p._after(store(db, stored))  # its entry id acknowledged: nothing is held back any more
    assert "persister_held" not in c.get("/readyz").json()
    assert not r.exists(HELD)


def test_one_batch_holding_both_numberings_is_stored_in_stream_order(world: Any) -> None:
    """The counter went back while the persister was behind: one batch holds events numbered 1..4 and,
    after them in the stream, events numbered 2 and 3 again. Stream order, not seq order, is the order."""
    c, r, db = world["client"], world["redis"], world["db"]
    ctx, _ = book_some(c, n=1)  # schedule, search, hold, book: seq 1..4, not stored yet
    pid = ctx["practice_id"]
    lower_audit_seq(r, pid, by=3)
    late = book(c, ctx, free_starts(c, ctx)[-1])  # search, hold, book: seq 2..4 again
    p = Persister(r, db, consumer="one", batch=1000)
    p.refresh_streams(force=True)
    entries = p._read(">", None)
    assert p._write(entries) == len(entries)
    assert chain(db, ctx["practice_id"]) == [
        ("schedule", 1, None),
        ("search", 2, None),
        ("hold", 3, None),
        ("book", 4, chain(db, pid)[3][2]),
        ("seq_rollback", 4, None),
        ("search", 2, None),
        ("hold", 3, None),
        ("book", 4, late["id"]),
    ]
    assert audit.verify(db, out=lambda _: None)
    assert int(r.hget(keys.audit(pid), "seq")) == 4
