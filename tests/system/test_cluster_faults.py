"""Fault tests on a real local Redis Cluster under load (issue 12, items 7; DESIGN.md invariants 1, 2 and 7).

A cluster of this module's own (3 primaries, 3 replicas, node-timeout 2000 ms, AOF always; api/devcluster.py,
ports 22401-22999), `booking serve --workers 2` and `booking persister` on it, one practice on each primary, and
search -> hold -> book threads per practice counting every answer (tests/support/faults.py):

* `CLUSTER FAILOVER` of each primary in turn: no acknowledged booking lost, no 500 (a NOSCRIPT from a promoted
  replica would be one), 503s only within a short window after each switch;
* `kill -9` of one primary: 503 `dependency_unavailable` only for that shard's practice until its replica is
  promoted, the other practices unaffected (not one failure); the node restarted rejoins as a replica; no 201 lost (WAIT 1);
* one practice's slot migrated to another primary and back, during bookings: no error at all;
* both nodes of one shard down: the other shards' answers and persistence go on as if nothing happened;
* 200 concurrent holds on one start of each practice at once: exactly one winner on each shard.

Each test prints what it measured (window lengths, failures); only generous bounds that catch a hang are asserted.
The nodes are stopped by process id in the module fixture's teardown, whatever happened.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.crc import key_slot

from api.devcluster import DevCluster, free_base_port
from engine import keys
from tests.cluster_support import cluster_env, show_node_logs
from tests.support.cluster_faults import Loads, failover, migrate_slot, nodes, owner, replica_of, window
from tests.support.config import AUTH
from tests.support.databases import database, fresh_database
from tests.support.faults import (
    assert_audit_verifies,
    assert_stored_exactly_once,
    lag_events,
    make_practice,
    stored_ids,
)
from tests.support.http import search
from tests.support.processes import Procs
from tests.support.servers import Server, serve_env, start_persister, start_serve, wait_until
from tests.system.test_concurrency import fire

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

OK = {(200, ""), (201, ""), (409, "slot_unavailable")}
REDIS_DOWN = (503, "dependency_unavailable")
SAFETY_S = 30.0  # a window longer than this is a hang, not a measurement


class Stack:
    def __init__(self, cluster: DevCluster, server: Server, env: dict[str, str], db_url: str, procs: Procs) -> None:
        self.cluster, self.url, self.env, self.db_url = cluster, server.url, env, db_url
        self.server, self.procs = server, procs
        self.ctxs: list[dict[str, Any]] = []
        self.booked: dict[str, dict[str, Any]] = {}  # every 201 of the module, checked after each test
        self.failed_holds: set[str] = set()

    def slot(self, ctx: dict[str, Any]) -> int:
        return key_slot(keys.tag(ctx["practice_id"]).encode())

    def crashes(self) -> str:
        """The server's unhandled errors, for an assertion's message: what a 500 was."""
        log = self.procs.log_of(self.server.proc)
        return "\n".join(chunk[-1500:] for chunk in log.split("unhandled error")[1:][-3:])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cluster = DevCluster(free_base_port(start=22401, stop=22990))
    atexit.register(cluster.stop)  # also when the session is interrupted before the teardown
    procs = Procs(Path(tmp_path_factory.mktemp("cluster-faults")))
    try:
        cluster.start()
        show_node_logs(cluster)
        db_url = fresh_database("booking_cluster_faults")
        env = serve_env(cluster.url, db_url, **cluster_env(cluster.url))
        s = Stack(cluster, start_serve(procs, env), env, db_url, procs)
        start_persister(procs, env)
        by_primary: dict[str, dict[str, Any]] = {}
        for _ in range(40):  # practice ids are random: a few cover the three primaries
            ctx = make_practice(s.url)
            by_primary.setdefault(owner(cluster, s.slot(ctx)).id, ctx)
            if len(by_primary) == 3:
                break
        assert len(by_primary) == 3, "40 practices did not cover the three primaries"
        s.ctxs = list(by_primary.values())
        yield s
    finally:
        procs.close()
        cluster.stop()


def record(s: Stack, loads: Loads) -> None:
    """What the module's checks must find: every 201, and the holds a book call without a 201 may have used."""
    for load in loads.by_practice.values():
        s.booked.update(load.booked)
        s.failed_holds |= load.failed_book_holds


def check_nothing_lost(s: Stack, loads: Loads) -> None:
    """Every 201 of the module so far is readable (from Redis, through the API) as booked, and stored once in
    PostgreSQL once the persister caught up; a book call without a 201 may or may not have booked its hold."""
    record(s, loads)
    with httpx.Client(base_url=s.url, headers=AUTH, timeout=10) as c:
        for appt_id, body in s.booked.items():
            got = c.get(f"/v1/appointments/{appt_id}")
            assert got.status_code == 200, (appt_id, body["phase"], got.text)
            assert (got.json()["status"], got.json()["start"]) == ("booked", body["start"]), appt_id
    with database(s.db_url) as db:
        wait_until(lambda: set(s.booked) <= set(stored_ids(db)), 60, "every acknowledged booking in PostgreSQL")
        wait_until(lambda: lag_events(s.url) == 0.0, 60, "the persister lag to return to zero")
        assert_stored_exactly_once(db, set(s.booked), may_also_hold=s.failed_holds)


# ------------------------------------------------------------------------------------------------ the tests
def test_failover_of_each_primary_under_load_loses_no_acknowledged_booking(stack: Stack) -> None:
    s = stack
    report = []
    with Loads(s.url, s.ctxs) as loads:
        loads.set_phase("before")
        loads.wait_for_more(5)
        marks = []
        for i, ctx in enumerate(s.ctxs):  # one practice per primary: each primary in turn
            primary = owner(s.cluster, s.slot(ctx))
            t0 = time.monotonic()
            loads.set_phase(f"failover {i}")
            promoted = failover(s.cluster, primary)
            marks.append((t0, i, primary.port, promoted.port, round(time.monotonic() - t0, 3)))
            loads.wait_for_more(5)  # bookings of every practice after the switch, this shard's on its new primary
        loads.stop()
    record(s, loads)
    print(loads.summary())
    ends = [m[0] for m in marks[1:]] + [float("inf")]
    for (t0, i, old, new, switched), end in zip(marks, ends):
        failures = [f for f in loads.failures_since(t0) if f[0] < end - t0]
        report.append(f"failover {i} ({old} -> {new}): roles swapped in {switched} s, {len(failures)} failures, "
                      f"window {window(failures)} s {failures[:5]}")  # fmt: skip
        assert window(failures) < SAFETY_S, failures
    print("\n".join(report))
    for pid, load in loads.by_practice.items():
        assert load.unexpected(OK | {REDIS_DOWN}) == {}, (pid, load.summary(), s.crashes())  # no 500 (no NOSCRIPT)
        assert not load.transport_errors, (pid, load.transport_errors)
        assert load.missing_retry_after == 0
    assert all(s.cluster.role(old) == "slave" and s.cluster.role(new) == "master" for _, _, old, new, _ in marks)
    check_nothing_lost(s, loads)
    assert_audit_verifies(s.env)


def test_kill9_of_a_primary_fails_only_its_shard_and_loses_no_acknowledged_booking(stack: Stack) -> None:
    s = stack
    # the load's public client keeps its abuse-limit keys ({c:<address>}) on one shard: kill that one, so that
    # the other shards' holds and bookings are served with the limits counted in each API process meanwhile
    limits_on = owner(s.cluster, key_slot(keys.client_holds("127.0.0.1").encode())).id
    victim = next(c for c in s.ctxs if owner(s.cluster, s.slot(c)).id == limits_on)
    slot = s.slot(victim)
    primary = owner(s.cluster, slot)
    replica = replica_of(s.cluster, primary)
    with Loads(s.url, s.ctxs) as loads:
        loads.set_phase("up")
        loads.wait_for_more(5)
        hurt = loads.by_practice[victim["practice_id"]]
        held = hurt.count(201)
        t0 = time.monotonic()
        s.cluster.kill9(primary.port)
        loads.set_phase("killed")
        wait_until(lambda: owner(s.cluster, slot).port == replica.port, SAFETY_S, "the replica to be promoted")
        promoted_after = round(time.monotonic() - t0, 3)
        loads.set_phase("promoted")
        wait_until(lambda: hurt.count(201) > held, SAFETY_S, "a hold on the promoted primary")
        reads_back_after = round(time.monotonic() - t0, 3)
        # bookings of that shard answer 503 until a replica confirms them again: the old primary, restarted
        t_restart = time.monotonic()
        s.cluster.restart(primary.port)  # same folder: nodes.conf and AOF; it rejoins as a replica
        s.cluster.wait_healthy(60)
        rejoined_after = round(time.monotonic() - t_restart, 3)
        loads.set_phase("rejoined")
        loads.wait_for_more(5)  # the killed shard's practice books again
        loads.stop()
    record(s, loads)
    print(loads.summary())
    hit = loads.failures_since(t0, victim["practice_id"])
    print(
        f"kill -9 of the primary on {primary.port}: replica {replica.port} promoted after {promoted_after} s,"
        f" searches and holds of its practice served again after {reads_back_after} s; bookings refused (503, no"
        f" replica to confirm) until the old primary rejoined as a replica, {rejoined_after} s after its restart;"
        f" {len(hit)} failures of that practice in all, the last {window(hit)} s after the kill"
    )
    assert s.cluster.role(primary.port) == "slave" and s.cluster.role(replica.port) == "master"
    assert window(hit) < 3 * SAFETY_S
    assert hurt.unexpected(OK | {REDIS_DOWN}) == {}, (hurt.summary(), s.crashes())
    assert hurt.count(*REDIS_DOWN) > 0, "no request of the killed shard's practice met the outage"
    assert not hurt.transport_errors and hurt.missing_retry_after == 0
    assert not [k for k in hurt.answers if k[0] == "rejoined" and k[2] >= 500], "errors after the node rejoined"
    for pid, load in loads.by_practice.items():  # the other shards: searches and holds never noticed
        if pid != victim["practice_id"]:
            seen = loads.failures_since(t0, pid)
            print(f"practice {pid} on another shard: {len(seen)} failures {seen}")
            assert not load.transport_errors, (pid, load.summary())
            # no 503 either: a dead node never closes the connections to the others (engine/redis/private.py)
            assert load.unexpected(OK) == {}, (pid, load.summary(), s.crashes())
    check_nothing_lost(s, loads)
    assert_audit_verifies(s.env)


def test_a_slot_migration_there_and_back_under_load_is_absorbed_without_errors(stack: Stack) -> None:
    s = stack
    ctx = s.ctxs[1]
    slot = s.slot(ctx)
    home = owner(s.cluster, slot)
    away = next(n for n in nodes(s.cluster) if n.primary and not n.failed and n.id != home.id)
    said = []
    with Loads(s.url, s.ctxs) as loads:
        loads.set_phase("before")
        loads.wait_for_more(5)
        t0 = time.monotonic()
        for name, src, dst in (("there", home, away), ("back", away, home)):
            loads.set_phase(f"migrating {name}")
            t = time.monotonic()
            moved = migrate_slot(s.cluster, slot, src, dst)
            said.append(f"slot {slot} {src.port} -> {dst.port}: {moved} keys in {time.monotonic() - t:.3f} s")
            assert owner(s.cluster, slot).id == dst.id
            loads.set_phase(f"after {name}")
            loads.wait_for_more(5)
        loads.stop()
    record(s, loads)
    print(loads.summary())
    print("; ".join(said), "; failures:", loads.failures_since(t0))
    for pid, load in loads.by_practice.items():  # searches, holds and bookings never noticed
        assert not load.transport_errors, (pid, load.summary())
        assert load.unexpected(OK) == {}, (pid, load.summary(), s.crashes())
    check_nothing_lost(s, loads)


def test_a_shard_without_any_node_holds_back_only_its_own_practices(stack: Stack) -> None:
    """Both nodes of one shard down (no failover possible) for as long as it takes: the other shards' searches,
    holds and bookings never notice, and their bookings reach PostgreSQL meanwhile (the persister reads, leases
    and acknowledges node by node). The shard chosen is the one of the persisters' membership keys."""
    s = stack
    on_it = key_slot(keys.PERSIST_MEMBERS.encode())
    primary = owner(s.cluster, on_it)
    replica = replica_of(s.cluster, primary)
    victim = next((c for c in s.ctxs if owner(s.cluster, s.slot(c)).id == primary.id), None)
    others = [c for c in s.ctxs if c is not victim]
    globals_there = [k for k in (keys.PRACTICES, keys.PERSIST_MEMBERS, keys.client_holds("127.0.0.1"))
                     if owner(s.cluster, key_slot(k.encode())).id == primary.id]  # fmt: skip
    with Loads(s.url, s.ctxs) as loads, database(s.db_url) as db:
        loads.set_phase("up")
        loads.wait_for_more(5)
        before = {a for load in loads.by_practice.values() for a in load.booked}  # a persister at work, caught up
        wait_until(lambda: before <= set(stored_ids(db)), 30, "the persister to store the bookings before the outage")
        t0 = time.monotonic()
        s.cluster.kill9(replica.port)
        s.cluster.kill9(primary.port)
        loads.set_phase("down")
        for ctx in others:
            loads.by_practice[ctx["practice_id"]].wait_for_more(10)
        down_booked = {a for c in others for a, b in loads.by_practice[c["practice_id"]].booked.items()
                       if b["phase"] == "down"}  # fmt: skip
        wait_until(lambda: down_booked <= set(stored_ids(db)), 30, "the other shards' bookings in PostgreSQL")
        stored_after = round(time.monotonic() - t0, 3)
        s.cluster.restart(primary.port)
        s.cluster.restart(replica.port)
        s.cluster.wait_healthy(60)
        back_after = round(time.monotonic() - t0, 3)
        loads.set_phase("back")
        loads.wait_for_more(5)
        loads.stop()
    record(s, loads)
    print(loads.summary())
    print(
        f"shard of {primary.port} and {replica.port} down for {back_after} s (holding {globals_there}); the other"
        f" shards' {len(down_booked)} bookings of the outage all in PostgreSQL {stored_after} s after it began"
    )
    for ctx in others:
        load = loads.by_practice[ctx["practice_id"]]
        assert not load.transport_errors, load.summary()
        assert load.unexpected(OK) == {}, (loads.failures_since(t0, ctx["practice_id"]), s.crashes())
    if victim is not None:
        hurt = loads.by_practice[victim["practice_id"]]
        assert hurt.unexpected(OK | {REDIS_DOWN}) == {}, (hurt.summary(), s.crashes())
        assert not [k for k in hurt.answers if k[0] == "back" and k[2] >= 500], "errors after the shard came back"
    check_nothing_lost(s, loads)
    assert_audit_verifies(s.env)


def test_200_concurrent_holds_on_one_start_of_each_shard_have_exactly_one_winner_each(stack: Stack) -> None:
    s = stack
    assert len({owner(s.cluster, s.slot(c)).id for c in s.ctxs}) == 3  # one practice per primary
    bodies: list[dict[str, Any]] = []
    with httpx.Client(base_url=s.url, headers=AUTH, timeout=30) as c:
        for ctx in s.ctxs:
            vt = ctx["visit_types"][30]
            day = dt.date.today() + dt.timedelta(days=40)
            slot = search(c, ctx["practice_id"], vt, day)[5]
            bodies += [{"practitioner_id": slot["practitioner_id"], "visit_type_id": vt, "start": slot["start"]}] * 200
    answers = asyncio.run(fire(s.url, bodies))
    for i, ctx in enumerate(s.ctxs):
        mine = answers[200 * i : 200 * (i + 1)]
        statuses = sorted(r.status_code for r in mine)
        assert statuses.count(201) == 1, (ctx["practice_id"], statuses)
        assert all(r.json()["code"] == "slot_unavailable" for r in mine if r.status_code != 201), statuses
