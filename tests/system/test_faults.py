"""Fault tests (issue 3, DESIGN.md invariants 2, 7 and 8), against real processes:

* `kill -9` the persister in the middle of a batch under load: every acknowledged booking reaches
  PostgreSQL exactly once, with exactly one `book` audit row, and the audit chain verifies;
* `kill -9` Redis (AOF, appendfsync always) under load: no acknowledged booking is lost, requests during the
  outage get errors (503 dependency_unavailable or a broken connection), never a 201;
* stop PostgreSQL (a throwaway cluster) under load: no request fails, the persister catches up, nothing is
  missing or duplicated;
* FLUSHALL Redis, `booking reconcile`: search offers exactly what it offered before, a booked interval
  cannot be held, appointments are readable, the audit chain continues.

The harness (processes, servers, the load, the checks) is in tests/support. Every process started here
(`booking serve --workers 2`, `booking persister`, `redis-server`, PostgreSQL) runs in its own process group
and is stopped with it in a fixture teardown. Waits are polls with deadlines; nothing asserts on timing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.support.config import AUTH
from tests.support.databases import database, fresh_database, q, redis_client
from tests.support.faults import (
    Load,
    assert_audit_verifies,
    assert_stored_exactly_once,
    days_ahead,
    lag_events,
    make_practice,
    running,
    stored_ids,
)
from tests.support.http import ready
from tests.support.processes import Procs, kill9
from tests.support.servers import (
    RedisServer,
    ThrowawayPostgres,
    run_cli,
    serve_env,
    start_persister,
    start_serve,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

OK_ANSWERS = {(200, ""), (201, ""), (409, "slot_unavailable")}
REDIS_DOWN = (503, "dependency_unavailable")


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.close()


# ------------------------------------------------------------------------------------------------ the tests
def test_kill9_persister_mid_batch_under_load_stores_every_booking_exactly_once(procs: Procs, redis_db: str) -> None:
    db_url = fresh_database("booking_fault_persister")
    env = serve_env(redis_db, db_url)
    url = start_serve(procs, env).url
    ctx = make_practice(url)
    stream = f"bk:v1:{{p:{ctx['practice_id']}}}:events"
    first = start_persister(procs, env, batch=20)
    killed_mid_batch = 0
    with database(db_url) as db, redis_client(redis_db) as r, running(Load(url, ctx)) as load:
        load.set_phase("persister running")
        load.wait_for_more(40)
        wait_until(lambda: q(db, "select count(*) from appointments")[0][0] > 0, 60, "the persister to store some")
        # kill -9 while the persister holds a read batch it has not acknowledged (entries pending for it)
        victim = first
        for _ in range(5):
            wait_until(
                lambda: any(c["pending"] for c in r.xinfo_consumers(stream, "persisters")),
                30,
                "the persister to hold an unacknowledged batch",
                every=0.001,
            )
            kill9(victim)
            dead = [c for c in r.xinfo_consumers(stream, "persisters") if c["pending"]]
            if dead:
                killed_mid_batch = sum(c["pending"] for c in dead)
                break
            victim = start_persister(procs, env, batch=20)  # it had just acknowledged: try again
        assert killed_mid_batch, "could not kill the persister in the middle of a batch"
        print(f"persister killed holding {killed_mid_batch} unacknowledged entries")
        load.set_phase("no persister")
        load.wait_for_more(40)
        start_persister(procs, env, batch=20)
        load.set_phase("second persister")
        load.wait_for_more(40)
        load.stop()
        print(load.summary())
        booked = set(load.booked)
        wait_until(lambda: booked <= set(stored_ids(db)), 60, "every acknowledged booking to reach PostgreSQL")
        wait_until(lambda: lag_events(url) == 0.0, 60, "the persister lag to return to zero")
        assert load.unexpected(OK_ANSWERS) == {}
        assert not load.transport_errors
        assert_stored_exactly_once(db, booked)
        assert r.xpending(stream, "persisters")["pending"] == 0
    assert_audit_verifies(env)


def test_kill9_redis_under_load_loses_no_acknowledged_booking(procs: Procs, tmp_path: Path) -> None:
    rs = RedisServer(procs, tmp_path / "redis-aof")
    rs.start()
    db_url = fresh_database("booking_fault_redis")
    env = serve_env(rs.url, db_url)
    url = start_serve(procs, env).url
    ctx = make_practice(url)
    start_persister(procs, env)
    with database(db_url) as db, running(Load(url, ctx)) as load:
        load.set_phase("redis up")
        load.wait_for_more(60)
        rs.kill9()
        load.set_phase("redis down")
        outage_start = load.count(503, "dependency_unavailable") + sum(load.transport_errors.values())
        wait_until(
            lambda: (
                load.count(503, "dependency_unavailable") + sum(load.transport_errors.values()) >= outage_start + 40
            ),
            30,
            "requests to fail while Redis is down",
        )
        load.set_phase("redis restarting")
        load.settle()  # no request sent while Redis was down is still in flight when it comes back
        rs.start()  # same port, same AOF directory
        load.set_phase("redis restarted")
        # the reconciliation marker came back from the AOF with everything else: no re-reconciliation needed
        wait_until(lambda: ready(url), 30, "/readyz after the Redis restart (did Redis keep its data?)")
        load.wait_for_more(60)
        load.stop()

        print(load.summary())
        booked = dict(load.booked)
        down = {k: n for k, n in load.answers.items() if k[0] == "redis down"}
        assert not any(k[2] == 201 for k in down), f"201 answered while Redis was down: {down}"
        assert load.unexpected(OK_ANSWERS | {REDIS_DOWN}) == {}, "answers other than 2xx/409/503"
        assert load.count(*REDIS_DOWN) > 0, "no request met the outage"
        assert load.missing_retry_after == 0, "a 503 without Retry-After"
        # every 201 survived the kill -9: readable from the restarted Redis, and stored in PostgreSQL
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as c:
            for appt_id, body in booked.items():
                got = c.get(f"/v1/appointments/{appt_id}")
                assert got.status_code == 200, (appt_id, body["phase"], got.text)
                assert got.json()["status"] == "booked"
                assert (got.json()["start"], got.json()["practitioner_id"]) == (body["start"], body["practitioner_id"])
        wait_until(lambda: set(booked) <= set(stored_ids(db)), 60, "every acknowledged booking to reach PostgreSQL")
        wait_until(lambda: lag_events(url) == 0.0, 60, "the persister lag to return to zero")
        assert_stored_exactly_once(db, set(booked), may_also_hold=set(load.failed_book_holds))
        # nothing half-done: a hold whose book call failed is either still held (and no appointment exists)
        # or used by exactly one stored booking (the script ran before Redis died, the answer was lost)
        by_hold = Counter(row[0] for row in q(db, "select hold_id from appointments"))
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as c:
            for hold_id in load.failed_book_holds:
                h = c.get(f"/v1/holds/{hold_id}")
                if h.status_code == 200:
                    assert h.json()["status"] == "held" and by_hold[hold_id] == 0, (hold_id, h.text)
                else:
                    assert (h.status_code, h.json()["code"]) == (409, "hold_used"), (hold_id, h.text)
                    assert by_hold[hold_id] == 1, hold_id
    assert_audit_verifies(env)


def test_postgres_down_under_load_fails_no_request_and_the_persister_catches_up(
    procs: Procs, throwaway_pg: ThrowawayPostgres, redis_db: str
) -> None:
    pg = throwaway_pg
    with database(pg.admin_url) as admin, admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text('CREATE DATABASE "booking"'))
    env = serve_env(redis_db, pg.url)
    migrated = run_cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    url = start_serve(procs, env).url
    ctx = make_practice(url)
    persister = start_persister(procs, env, batch=50)
    with database(pg.url) as db, running(Load(url, ctx)) as load:
        load.set_phase("postgres up")
        load.wait_for_more(40)
        wait_until(lambda: q(db, "select count(*) from appointments")[0][0] > 0, 60, "the persister to store some")
        db.dispose()  # drop pooled connections before the cluster goes away
        pg.stop_immediately()
        load.set_phase("postgres down")
        stopped_at = load.n_booked
        time.sleep(4)  # the outage; the load keeps running meanwhile (no assertion on timing)
        load.wait_for_more(20)  # and keeps booking
        assert load.n_booked > stopped_at
        pg.start()
        load.set_phase("postgres restarted")
        load.wait_for_more(40)
        load.stop()

        print(load.summary())
        assert load.unexpected(OK_ANSWERS) == {}, "a request failed while PostgreSQL was down"
        assert not load.transport_errors
        booked = {a for a, b in load.booked.items()}
        during = {a for a, b in load.booked.items() if b["phase"] == "postgres down"}
        assert during, "nothing was booked during the outage"
        wait_until(lambda: lag_events(url) == 0.0, 90, "the persister lag to return to zero")
        assert "database unavailable" in procs.log_of(persister), "the persister never noticed the outage"
        assert_stored_exactly_once(db, booked)
    assert_audit_verifies(env)


def test_flushall_then_reconcile_offers_exactly_what_was_offered(procs: Procs, tmp_path: Path) -> None:
    rs = RedisServer(procs, tmp_path / "redis-flush", aof=False)
    rs.start()
    db_url = fresh_database("booking_fault_reconcile")
    env = serve_env(rs.url, db_url)
    url = start_serve(procs, env).url
    ctx = make_practice(url, practitioners=2)
    pid, vt = ctx["practice_id"], ctx["visit_types"][30]
    day = days_ahead(first=3, count=1)[0]
    start_persister(procs, env)
    appts: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as c:
        slots = c.get(f"/v1/practices/{pid}/availability", params={"date": day.isoformat(), "visit_type_id": vt})
        for s in slots.json()["slots"]:
            h = c.post(
                "/v1/holds", json={"practitioner_id": s["practitioner_id"], "visit_type_id": vt, "start": s["start"]}
            )
            if h.status_code == 409:  # overlaps one booked just before (slots start every 15 minutes)
                continue
            assert h.status_code == 201, h.text
            b = c.post(
                "/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "Ada", "email": "a@b.c"}}
            )
            assert b.status_code == 201, b.text
            appts.append(b.json())
            if len(appts) == 6:
                break
        cancelled = appts.pop()
        assert c.post(f"/v1/appointments/{cancelled['id']}/cancel", json={"reason": "ill"}).status_code == 200

        def availability() -> list[dict[str, str]]:
            r = c.get(
                f"/v1/practices/{pid}/availability", params={"date": day.isoformat(), "visit_type_id": vt, "days": 7}
            )
            assert r.status_code == 200, r.text
            return r.json()["slots"]  # type: ignore[no-any-return]

        before = availability()
        assert before
        with database(db_url) as db:
            wait_until(lambda: lag_events(url) == 0.0, 60, "the persister to catch up")
            assert len(stored_ids(db)) == len(appts) + 1
        with redis_client(rs.url) as r:
            r.flushall()
        assert c.get("/readyz").status_code == 503  # Redis lost its data: not ready until reconciled

        res = run_cli(env, "reconcile")
        assert res.returncode == 0, res.stdout + res.stderr
        for a in [*appts, cancelled]:
            assert f"restored in Redis: appointment {a['id']}" in res.stdout, res.stdout
        assert "schedule of" in res.stdout
        wait_until(lambda: ready(url), 30, "/readyz after the reconciliation")

        assert availability() == before
        taken = appts[0]
        again = c.post(
            "/v1/holds",
            json={"practitioner_id": taken["practitioner_id"], "visit_type_id": vt, "start": taken["start"]},
        )
        assert again.status_code == 409 and again.json()["code"] == "slot_unavailable", again.text
        got = c.get(f"/v1/appointments/{taken['id']}")
        assert got.status_code == 200 and got.json()["status"] == "booked", got.text
        gone = c.get(f"/v1/appointments/{cancelled['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled", gone.text
        # the interval of the cancelled appointment is offered and can be booked; the chain continues
        h = c.post(
            "/v1/holds",
            json={"practitioner_id": cancelled["practitioner_id"], "visit_type_id": vt, "start": cancelled["start"]},
        )
        assert h.status_code == 201, h.text
        b = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "Bo", "email": "b@c.d"}})
        assert b.status_code == 201, b.text
        with database(db_url) as db:
            wait_until(lambda: b.json()["id"] in stored_ids(db), 60, "the new booking to reach PostgreSQL")
    assert_audit_verifies(env)
