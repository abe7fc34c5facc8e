"""Write-behind to PostgreSQL: idempotent replays, the audit chain, the exclusion backstop, reconciliation."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest
import redis as redis_sync
import redis.asyncio as aioredis
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, InternalError

from api.app import create_app
from engine import keys
from engine.service import BookingEngine
from persistence import audit, effects, migrate, quarantine, writer
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Any:
    """A flushed Redis db (the module's own), a fresh PostgreSQL database, an app on both, and a persister (not
    running)."""
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    url = fresh_database("booking_persist")
    db = make_engine(url)
    app = create_app(settings_for(redis_db, database_url=url))
    with TestClient(app) as c:
        c.headers.update(AUTH)
        persister = Persister(r, db, consumer="t1")
        yield {"client": c, "redis": r, "db": db, "url": url, "persister": persister, "redis_url": redis_db}
    db.dispose()
    r.close()


def book_some(c: Any, n: int = 3) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ctx = setup_practice(c, durations=(30,))
    day = next_weekday(1)
    slots = search(c, ctx["practice_id"], ctx["visit_types"][30], day)
    appts = []
    for s in slots[: n * 2 : 2]:
        h = c.post(
            "/v1/holds",
            json={
                "practitioner_id": ctx["practitioners"][0],
                "visit_type_id": ctx["visit_types"][30],
                "start": s["start"],
            },
        ).json()
        appts.append(
            c.post(
                "/v1/appointments",
                json={
                    "hold_id": h["id"],
                    "patient": {"name": "Grace H", "email": "grace@example.org", "phone": "+33 1 23 45 67 89"},
                },
            ).json()
        )
    ctx["day"] = day
    return ctx, appts


async def run_reconcile(redis_url: str, db: Any, said: list[str]) -> Any:
    ar = aioredis.Redis.from_url(redis_url)
    sr = redis_sync.Redis.from_url(redis_url)
    try:
        return await reconcile(BookingEngine(ar, settings_for(redis_url)), sr, db, out=said.append)
    finally:
        await ar.aclose()
        sr.close()


def rows(db: Any, sql: str, **params: Any) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(text(sql), params).all())


def test_persister_stores_bookings_and_a_verified_chain_and_replays_change_nothing(world: Any) -> None:
    c, db, p = world["client"], world["db"], world["persister"]
    ctx, appts = book_some(c)
    c.post(f"/v1/appointments/{appts[0]['id']}/cancel", json={"reason": "ill"})
    assert p.drain() > 0
    stored = {r[0]: (r[1], r[2]) for r in rows(db, "select id, status, version from appointments")}
    assert stored == {appts[0]["id"]: ("cancelled", 2), appts[1]["id"]: ("booked", 1), appts[2]["id"]: ("booked", 1)}
    n_audit = rows(db, "select count(*) from audit_events")[0][0]
    actions = [r[0] for r in rows(db, "select action from audit_events order by chain_index")]
    assert actions == ["schedule", "search", "hold", "book", "hold", "book", "hold", "book", "cancel"]
    # replay everything the stream still holds: nothing changes
    r = world["redis"]
    stream = keys.events(ctx["practice_id"])
    r.xgroup_setid(stream, keys.PERSIST_GROUP, "0")
    p.drain()
    assert rows(db, "select count(*) from audit_events")[0][0] == n_audit
    assert len(rows(db, "select id from appointments")) == 3
    assert audit.verify(db, out=lambda _: None)
    pending = r.xpending(stream, keys.PERSIST_GROUP)["pending"]
    assert pending == 0


def test_two_persisters_reading_out_of_order_keep_one_chain(world: Any) -> None:
    c, db, r = world["client"], world["db"], world["redis"]
    ctx, _ = book_some(c, n=4)
    a = Persister(r, db, consumer="a", batch=6)  # 3 setup events, then audit seq 1..3
    b = Persister(r, db, consumer="b", batch=100)
    a.refresh_streams(force=True)
    b.refresh_streams(force=True)
    first = a._read(">", None)  # a takes the first entries and "stalls"
    assert b._write(b._read(">", None)) == 0  # b's audited entries (seq 4..) must wait for a's
    chained_before = rows(db, "select count(*) from audit_events")[0][0]
    assert chained_before == 0
    a._write(first)
    b.step(block=False)  # b retries its pending entries, now in order
    actions = [r_[0] for r_ in rows(db, "select action from audit_events order by chain_index")]
    assert actions.count("book") == 4 and actions[0] == "schedule"
    seqs = [r_[0] for r_ in rows(db, "select seq from audit_events order by chain_index")]
    assert seqs == list(range(1, len(seqs) + 1))
    assert audit.verify(db, out=lambda _: None)


def test_one_batch_of_several_practices_extends_each_chain_and_head(world: Any) -> None:
    """The writer locks every head of a batch at once and writes all audit rows in one INSERT: each practice
    must still get its own gap-free chain, and its head must name its own last row."""
    c, db, p = world["client"], world["db"], world["persister"]
    ctx_a, appts_a = book_some(c, n=2)
    ctx_b, appts_b = book_some(c, n=3)
    slots = search(c, ctx_b["practice_id"], ctx_b["visit_types"][30], ctx_b["day"])
    released = c.post(
        "/v1/holds",
        json={
            "practitioner_id": ctx_b["practitioners"][0],
            "visit_type_id": ctx_b["visit_types"][30],
            "start": slots[-1]["start"],
        },
    ).json()["id"]
    assert c.delete(f"/v1/holds/{released}").status_code == 204
    assert c.post(f"/v1/appointments/{appts_a[1]['id']}/cancel", json={}).status_code == 200
    assert p.drain() > 0
    # the deferred effects (hold rows, hold states, cancellations) landed, each record in its final state
    hold_rows = {r[0]: (r[1], r[2]) for r in rows(db, "select id, state, appointment_id from holds")}
    assert hold_rows[released] == ("released", None)
    booked = rows(db, "select id, hold_id from appointments")
    assert {a for a, _ in booked} == {a["id"] for a in appts_a + appts_b}
    for appt_id, hold_id in booked:
        assert hold_rows[hold_id] == ("booked", appt_id)
    status = {r[0]: (r[1], r[2]) for r in rows(db, "select id, status, version from appointments")}
    assert status[appts_a[1]["id"]] == ("cancelled", 2) and status[appts_a[0]["id"]] == ("booked", 1)
    for ctx in (ctx_a, ctx_b):
        pid = ctx["practice_id"]
        seqs = [
            r[0] for r in rows(db, "select seq from audit_events where practice_id = :p order by chain_index", p=pid)
        ]
        assert seqs == list(range(1, len(seqs) + 1))
        last_hash = rows(
            db, "select hash from audit_events where practice_id = :p order by chain_index desc limit 1", p=pid
        )
        head = rows(db, "select last_seq, chain_index, hash from audit_heads where practice_id = :p", p=pid)
        assert head == [(len(seqs), len(seqs), last_hash[0][0])]
    # practice b: one more hold and book, then a search, a hold and a release; practice a: a cancellation
    count = {r[0]: r[1] for r in rows(db, "select practice_id, count(*) from audit_events group by practice_id")}
    assert count[ctx_b["practice_id"]] == count[ctx_a["practice_id"]] + 4
    assert audit.verify(db, out=lambda _: None)


def refusing_holds_of(practice_id: str, real: Any) -> Any:
    """writer._effects, except that the database "refuses" every hold of one practice."""

    def effects(conn: Any, e: Any, *later: Any) -> None:
        if e.practice_id == practice_id and e.__struct_config__.tag == "hold":
            raise IntegrityError("INSERT", {}, Exception("refused for the test"))
        real(conn, e, *later)

    return effects


def quarantine_rows(db: Any) -> dict[str, tuple[str, int, str | None]]:
    """Open quarantine rows: id -> (action, audited, entity)."""
    got = rows(db, "select id, action, audited, entity from quarantined_events where replayed_at_ms is null")
    return {r[0]: (r[1], r[2], r[3]) for r in got}


def test_a_refused_event_is_set_aside_and_holds_back_nothing(world: Any, monkeypatch: Any) -> None:
    """Most effects run without a savepoint; when the database refuses one anyway, the persister applies the
    batch again event by event: the refused event is set aside in the quarantine (issue 22: it used to hold its
    practice back for ever), the later events of its hold wait behind it there, everything else is stored, and
    the audit chain goes on. Once the cause is gone, the replay applies them in order."""
    c, db, p, r = world["client"], world["db"], world["persister"], world["redis"]
    ctx_a, appts_a = book_some(c, n=2)
    ctx_b, _ = book_some(c, n=2)
    real = writer._effects
    monkeypatch.setattr(writer, "_effects", refusing_holds_of(ctx_a["practice_id"], real))
    p.drain()
    actions = {
        pid: [r[0] for r in rows(db, "select action from audit_events where practice_id = :p order by seq", p=pid)]
        for pid in (ctx_a["practice_id"], ctx_b["practice_id"])
    }
    everything = ["schedule", "search", "hold", "book", "hold", "book"]
    assert actions == {ctx_a["practice_id"]: everything, ctx_b["practice_id"]: everything}
    for ctx in (ctx_a, ctx_b):
        assert r.xpending(keys.events(ctx["practice_id"]), keys.PERSIST_GROUP)["pending"] == 0
    aside = quarantine_rows(db)
    assert sorted(v[0] for v in aside.values()) == ["book", "book", "hold", "hold"]
    assert all(k.startswith(ctx_a["practice_id"] + "-") and v[1] == 1 for k, v in aside.items())
    appointment_ids = {x[0] for x in rows(db, "select id from appointments")}
    assert not {a["id"] for a in appts_a} & appointment_ids  # the bookings of the refused holds wait behind them
    assert p.quarantined == 4
    monkeypatch.setattr(writer, "_effects", real)
    said: list[str] = []
    assert quarantine.replay(db, out=said.append) == (4, 0), said
    assert quarantine_rows(db) == {}
    holds = {
        x[0]: x[1]
        for x in rows(db, "select appointment_id, state from holds where practice_id = :p", p=ctx_a["practice_id"])
    }
    assert holds == {a["id"]: "booked" for a in appts_a}  # replayed in stream order: placed, then booked
    assert {a["id"] for a in appts_a} <= {x[0] for x in rows(db, "select id from appointments")}
    assert audit.verify(db, out=lambda _: None)


def test_a_refused_event_is_set_aside_under_its_own_practice_when_another_stream_has_the_same_entry_id(
    world: Any, monkeypatch: Any
) -> None:
    """Stream entry ids are per stream: two practices' events written in the same millisecond share one. The
    persister must set aside and acknowledge by practice and id: the refused event of one practice is in the
    quarantine under its own practice, the other practice's event with the same id is stored."""
    c, db, p, r = world["client"], world["db"], world["persister"], world["redis"]
    ctx_a, _ = book_some(c, n=1)
    ctx_b, _ = book_some(c, n=1)
    p.drain()
    same_id = "9999999999999-0"
    for ctx, kind in ((ctx_a, b"hold"), (ctx_b, b"search")):
        stream = keys.events(ctx["practice_id"])
        fields = next(f for _, f in reversed(r.xrange(stream)) if f[b"type"] == kind)
        last = rows(db, "select last_seq from audit_heads where practice_id = :p", p=ctx["practice_id"])[0][0]
        r.xadd(stream, {**fields, b"seq": str(last + 1).encode()}, id=same_id)
    real = writer._effects
    monkeypatch.setattr(writer, "_effects", refusing_holds_of(ctx_a["practice_id"], real))
    p.drain()
    stream_a, stream_b = keys.events(ctx_a["practice_id"]), keys.events(ctx_b["practice_id"])
    assert r.xpending(stream_b, keys.PERSIST_GROUP)["pending"] == 0  # b's copy is stored
    assert r.xpending(stream_a, keys.PERSIST_GROUP)["pending"] == 0  # a's is set aside, not lost
    assert set(quarantine_rows(db)) == {f"{ctx_a['practice_id']}-{same_id}"}
    ids = {x[0] for x in rows(db, "select id from audit_events")}
    assert {f"{ctx_a['practice_id']}-{same_id}", f"{ctx_b['practice_id']}-{same_id}"} <= ids
    monkeypatch.setattr(writer, "_effects", real)
    assert quarantine.replay(db, out=lambda _: None) == (1, 0)
    assert quarantine_rows(db) == {}


def test_a_cancellation_and_a_new_booking_of_its_interval_in_one_batch_are_stored_in_order(
    world: Any, caplog: Any
) -> None:
    """The database's exclusion constraint sees a batch's cancellation before the booking that takes the
    freed interval (a writer that deferred cancellations to the end of a batch refused that booking)."""
    c, db, p = world["client"], world["db"], world["persister"]
    ctx, appts = book_some(c, n=1)
    p.drain()
    first = appts[0]
    assert c.post(f"/v1/appointments/{first['id']}/cancel", json={}).status_code == 200
    hold = c.post(
        "/v1/holds",
        json={
            "practitioner_id": ctx["practitioners"][0],
            "visit_type_id": ctx["visit_types"][30],
            "start": first["start"],
        },
    )
    assert hold.status_code == 201, hold.text
    again = c.post(
        "/v1/appointments",
        json={"hold_id": hold.json()["id"], "patient": {"name": "Ada L", "email": "ada@example.org"}},
    ).json()
    with caplog.at_level(logging.INFO, logger="booking.persister"):
        p.drain()  # cancel, hold and book arrive in one batch
    assert not [m for m in caplog.messages if "refused" in m or "waits for" in m]  # stored at the first try
    status = {x[0]: x[1] for x in rows(db, "select id, status from appointments")}
    assert status == {first["id"]: "cancelled", again["id"]: "booked"}
    assert world["redis"].xpending(keys.events(ctx["practice_id"]), keys.PERSIST_GROUP)["pending"] == 0


def test_audit_rows_are_append_only_and_verify_names_an_altered_row(world: Any) -> None:
    c, db, p = world["client"], world["db"], world["persister"]
    book_some(c)
    p.drain()
    victim = rows(db, "select id from audit_events where action = 'book' order by chain_index limit 1")[0][0]
    with pytest.raises((InternalError, IntegrityError, Exception)) as refused:
        with db.begin() as conn:
            conn.execute(text("update audit_events set actor = 'mallory' where id = :i"), {"i": victim})
    assert "append-only" in str(refused.value)
    with pytest.raises(Exception, match="append-only"):
        with db.begin() as conn:
            conn.execute(text("delete from audit_events where id = :i"), {"i": victim})
    # an attacker with superuser rights switches the trigger off and edits a row
    with db.begin() as conn:
        conn.execute(text("alter table audit_events disable trigger audit_events_append_only"))
        conn.execute(text("update audit_events set actor = 'mallory' where id = :i"), {"i": victim})
        conn.execute(text("alter table audit_events enable trigger audit_events_append_only"))
    said: list[str] = []
    assert audit.verify(db, out=said.append) is False
    assert any(victim in line and "altered" in line for line in said), said


def test_the_database_refuses_an_overlapping_booking(world: Any) -> None:
    c, db, p = world["client"], world["db"], world["persister"]
    _, appts = book_some(c, n=1)
    p.drain()
    a = appts[0]
    with pytest.raises(IntegrityError, match="no_overlapping_bookings"):
        with db.begin() as conn:
            conn.execute(
                text(
                    "insert into appointments (id, practice_id, practitioner_id, visit_type_id, start_at, end_at, status,"
                    " version, patient_name, patient_email, manage_hash, updated_at_ms) select 'x-overlap', practice_id,"
                    " practitioner_id, visit_type_id, start_at + interval '10 minutes', end_at + interval '10 minutes',"
                    " 'booked', 1, 'x', 'x@y.z', '', 0 from appointments where id = :i"
                ),
                {"i": a["id"]},
            )
    # a cancelled appointment may share the interval
    with db.begin() as conn:
        conn.execute(
            text(
                "insert into appointments (id, practice_id, practitioner_id, visit_type_id, start_at, end_at, status,"
                " version, patient_name, patient_email, manage_hash, updated_at_ms) select 'x-cancelled', practice_id,"
                " practitioner_id, visit_type_id, start_at, end_at, 'cancelled', 2, 'x', 'x@y.z', '', 0"
                " from appointments where id = :i"
            ),
            {"i": a["id"]},
        )


def test_flushall_then_reconcile_restores_exactly_what_was_offered(world: Any) -> None:
    c, db, p, r = world["client"], world["db"], world["persister"], world["redis"]
    ctx, appts = book_some(c)
    c.post(f"/v1/appointments/{appts[1]['id']}/cancel")
    p.drain()
    pid, vt, day = ctx["practice_id"], ctx["visit_types"][30], ctx["day"]
    before = search(c, pid, vt, day, days=7)
    r.flushdb()
    assert c.get("/readyz").status_code == 503  # Redis lost its data: not ready until reconciled
    said: list[str] = []
    report = asyncio.run(run_reconcile(world["redis_url"], db, said))
    assert any(appts[0]["id"] in line for line in report.restored)
    assert c.get("/readyz").status_code == 200
    assert search(c, pid, vt, day, days=7) == before
    taken = c.post(
        "/v1/holds", json={"practitioner_id": ctx["practitioners"][0], "visit_type_id": vt, "start": appts[0]["start"]}
    )
    assert taken.status_code == 409 and taken.json()["code"] == "slot_unavailable"
    got = c.get(f"/v1/appointments/{appts[1]['id']}").json()
    assert got["status"] == "cancelled" and got["version"] == 2
    # new audit events continue the chain after the restored sequence number
    search(c, pid, vt, day)
    p.drain()
    assert audit.verify(db, out=lambda _: None)
    last = rows(db, "select action, seq from audit_events order by chain_index desc limit 1")[0]
    assert last[0] == "search"


def test_audit_api_filters_and_pages(world: Any) -> None:
    c, p = world["client"], world["persister"]
    ctx, appts = book_some(c)
    p.drain()
    pid = ctx["practice_id"]
    page = c.get("/v1/audit", params={"practice_id": pid, "limit": 4}).json()
    assert len(page["items"]) == 4 and page["next"]
    rest = c.get("/v1/audit", params={"practice_id": pid, "cursor": page["next"], "limit": 100}).json()
    everything = page["items"] + rest["items"]
    assert [i["chain_index"] for i in everything] == list(range(1, len(everything) + 1))
    assert rest["next"] is None
    mine = c.get("/v1/audit", params={"appointment_id": appts[0]["id"]}).json()["items"]
    assert [i["action"] for i in mine] == ["book"]
    assert mine[0]["hold_id"] and mine[0]["detail"]["patient_id"]
    searches = c.get("/v1/audit", params={"practice_id": pid, "action": "search"}).json()["items"]
    assert searches and searches[0]["detail"]["count"] > 0
    first = everything[0]
    assert set(first) >= {
        "id",
        "at",
        "action",
        "actor",
        "practice_id",
        "practitioner_id",
        "hold_id",
        "appointment_id",
        "request_id",
        "detail",
    }
    assert dt.datetime.fromisoformat(first["at"]).utcoffset() is not None
    for item in everything:
        assert "grace" not in str(item).lower()  # no patient data in the audit trail


def test_startup_refuses_an_unknown_schema() -> None:
    url = fresh_database("booking_unmigrated")
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.execute(text("drop table alembic_version"))
    with pytest.raises(migrate.SchemaMismatchError, match="booking migrate"):
        migrate.ensure_current(eng)
    eng.dispose()


def test_embedded_mode_keeps_bookings_across_restarts(tmp_path: Any) -> None:
    settings = settings_for(None, data_dir=str(tmp_path))
    with TestClient(create_app(settings)) as c:
        c.headers.update(AUTH)
        ctx, appts = book_some(c, n=2)
        before = search(c, ctx["practice_id"], ctx["visit_types"][30], ctx["day"])
        import time

        deadline = time.time() + 10
        while time.time() < deadline:  # the in-process persister writes behind
            eng = make_engine(f"sqlite:///{tmp_path}/booking.db")
            n = rows(eng, "select count(*) from appointments")[0][0]
            eng.dispose()
            if n == 2:
                break
            time.sleep(0.1)
    with TestClient(create_app(settings)) as c:  # a new process: the in-process Redis starts empty
        c.headers.update(AUTH)
        assert search(c, ctx["practice_id"], ctx["visit_types"][30], ctx["day"]) == before
        assert c.get(f"/v1/appointments/{appts[0]['id']}").json()["status"] == "booked"


def test_verify_notices_rows_cut_off_the_end_of_a_chain(world: Any) -> None:
    c, db, p = world["client"], world["db"], world["persister"]
    book_some(c, n=1)
    p.drain()
    last = rows(db, "select id from audit_events order by chain_index desc limit 1")[0][0]
    with db.begin() as conn:
        conn.execute(text("alter table audit_events disable trigger audit_events_append_only"))
        conn.execute(text("delete from audit_events where id = :i"), {"i": last})
        conn.execute(text("alter table audit_events enable trigger audit_events_append_only"))
    said: list[str] = []
    assert audit.verify(db, out=said.append) is False
    assert any("removed from its end" in line for line in said), said


def test_reads_that_need_the_database_answer_503_when_it_is_unreachable(redis_db: str) -> None:
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    r.hset(keys.META, "reconciled_at_ms", 1)  # Redis is fine; only the database is away
    dead = "postgresql+psycopg://root@127.0.0.1:1/nowhere"
    with TestClient(create_app(settings_for(redis_db, database_url=dead))) as c:
        c.headers.update(AUTH)
        ctx, appts = book_some(c, n=1)  # bookings need Redis only
        got = c.get("/v1/audit", params={"practice_id": ctx["practice_id"]})
        assert got.status_code == 503 and got.json()["code"] == "dependency_unavailable"
        assert "retry-after" in got.headers
        assert c.get(f"/v1/appointments/{appts[0]['id']}/notifications").status_code == 503
    r.close()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_one_upsert_keeps_newer_rows_for_single_rows_and_executemany_alike(dialect: str, tmp_path: Any) -> None:
    """effects._upsert: appointments never go back a version, schedules never back in time (single rows and
    executemany alike, on both dialects); other tables take the latest copy."""
    from engine.events import AppointmentRecord
    from engine.model import Patient
    from persistence.tables import appointments, holds, schedules

    url = f"sqlite:///{tmp_path / 'w.db'}" if dialect == "sqlite" else fresh_database("booking_writer")
    db = make_engine(url)
    migrate.upgrade(db)
    patient = Patient(name="Grace H", email="grace@example.org")

    def appt(version: int, status: str) -> dict[str, Any]:
        record = AppointmentRecord(
            id="a1", status=status, version=version, practice_id="p", practitioner_id="r", visit_type_id="v",
            start=1_800_000_000 + version * 3600, end=1_800_001_800 + version * 3600, patient=patient, hold_id="h",
        )  # fmt: skip
        return effects.appointment_row(record, version)

    def sched(at: int) -> dict[str, Any]:
        return {"practitioner_id": "r", "practice_id": "p", "body": f"b{at}", "changed_at_ms": at, "event_id": "e"}

    def hold(hid: str, state: str) -> dict[str, Any]:
        return {
            "id": hid, "practice_id": "p", "practitioner_id": "r", "visit_type_id": "v",
            "start_at": writer.utc(1_800_000_000), "end_at": writer.utc(1_800_001_800), "expires_at_ms": 1,
            "state": state, "appointment_id": None, "updated_at_ms": 1,
        }  # fmt: skip

    try:
        with db.begin() as conn:
            effects._upsert(conn, appointments, appt(2, "cancelled"), "id")
            effects._upsert(conn, appointments, appt(1, "booked"), "id")  # older: ignored
            effects._upsert(conn, appointments, [appt(1, "booked"), appt(2, "booked")], "id")  # not newer either
            effects._upsert(conn, schedules, [sched(200), sched(100)], "practitioner_id")
            effects._upsert(conn, holds, [hold("h1", "held"), hold("h2", "held")], "id")
        assert rows(db, "select status, version from appointments") == [("cancelled", 2)]
        assert rows(db, "select body from schedules") == [("b200",)]
        with db.begin() as conn:
            effects._upsert(conn, appointments, [appt(3, "booked")], "id")
            effects._upsert(conn, schedules, sched(300), "practitioner_id")
            effects._upsert(conn, holds, hold("h2", "booked"), "id")
        assert rows(db, "select status, version, updated_at_ms from appointments") == [("booked", 3, 3)]
        assert rows(db, "select body from schedules") == [("b300",)]
        assert rows(db, "select id, state from holds order by id") == [("h1", "held"), ("h2", "booked")]
        assert {(dialect, t) for t in ("appointments", "schedules", "holds")} <= set(effects._UPSERTS)
    finally:
        db.dispose()
