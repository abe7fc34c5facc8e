"""Several persisters split the practices among themselves (persistence/shares.py), on a single Redis and on the
real local cluster: each stores only its share, every event is stored exactly once, and a persister killed with
`kill -9` (its whole process group) mid-load has its share taken over, its unacknowledged entries claimed, with
order within each practice kept."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from engine import keys
from engine.codec import text
from engine.redis import clients
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.shards import node_of
from persistence.shares import owner_of
from tests import cluster_support
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database, q
from tests.support.faults import assert_audit_verifies, assert_stored_exactly_once
from tests.support.http import next_weekday, search, setup_practice
from tests.support.processes import Procs
from tests.support.servers import CLI, serve_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

dev_cluster, cluster_url = cluster_support.dev_cluster, cluster_support.cluster_url


# ----------------------------------------------------------------- the assignment (no Redis)
def test_rendezvous_is_deterministic_even_and_moves_only_the_leavers_share() -> None:
    practices = [f"{i:016x}" for i in range(3000)]
    members = ["a/1", "b/2", "c/3"]
    owners = {p: owner_of(p, members) for p in practices}
    assert owners == {p: owner_of(p, list(reversed(members))) for p in practices}  # order of the view: irrelevant
    counts = {m: sum(1 for o in owners.values() if o == m) for m in members}
    assert all(800 < n < 1200 for n in counts.values()), counts
    after = {p: owner_of(p, ["a/1", "c/3"]) for p in practices}  # b left
    assert all(after[p] == owners[p] for p in practices if owners[p] != "b/2")  # nobody else's practices move
    assert owner_of("x", []) is None


# ----------------------------------------------------------------- on a single Redis and on the cluster
class Target:
    def __init__(self, redis_url: str, fields: dict[str, Any], env: dict[str, str]) -> None:
        self.redis_url, self.fields, self.env = redis_url, fields, env
        self.cluster = bool(fields.get("redis_cluster"))

    def sync(self) -> Any:
        return clients.redis_for(self.redis_url, cluster=self.cluster)


@pytest.fixture(params=["redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def target(redis_db: str, request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "redis":
        t = Target(redis_db, {"redis_url": redis_db}, {})
    else:
        url = request.getfixturevalue("cluster_url")
        t = Target(url, cluster_support.cluster_fields(url), cluster_support.cluster_env(url))
    r = t.sync()
    r.flushall() if t.cluster else r.flushdb()
    r.close()
    yield t


@pytest.fixture
def world(target: Target) -> Iterator[dict[str, Any]]:
    url = fresh_database("booking_shares")
    db = make_engine(url)
    r = target.sync()
    app = create_app(settings_for(**{**target.fields, "database_url": url}))
    with TestClient(app) as c:
        c.headers.update(AUTH)
        yield {"client": c, "redis": r, "db": db, "url": url, "target": target}
    db.dispose()
    r.close()


def book_in(c: Any, ctx: dict[str, Any], n: int, day: int = 2) -> list[str]:
    """``n`` bookings, each in the first free slot of a day (``day`` 2: the next Wednesday; 8 slots a day)."""
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    out = []
    for _ in range(n):
        slot = search(c, pid, vt, next_weekday(day % 5, 2 + 7 * (day // 5)))[
            0
        ]  # searched again: starts of one day overlap
        h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]})
        assert h.status_code == 201, h.text
        a = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "A", "email": "a@b.org"}})
        assert a.status_code == 201, a.text
        out.append(a.json()["id"])
    return out


def stream_entries(r: Any, practice_ids: list[str]) -> int:
    return sum(int(r.xlen(keys.events(p))) for p in practice_ids)


def test_two_persisters_split_the_practices_and_store_every_event_once(world: dict[str, Any]) -> None:
    c, r, db = world["client"], world["redis"], world["db"]
    a = Persister(r, db, consumer="share-a", sharing="members", lease_ms=30_000, batch=7)
    b = Persister(r, db, consumer="share-b", sharing="members", lease_ms=30_000, batch=7)
    pair = sorted([a.share.owner, b.share.owner])
    ctxs: list[dict[str, Any]] = []
    while len(ctxs) < 8 or len({owner_of(ctx["practice_id"], pair) for ctx in ctxs}) < 2:  # each gets some
        assert len(ctxs) < 60, "random practice ids never reached both members"
        ctxs.append(setup_practice(c, durations=(30,)))
    pids = [ctx["practice_id"] for ctx in ctxs]
    booked = [a for ctx in ctxs for a in book_in(c, ctx, 2)]
    a.share.update([])  # both members heartbeat before either takes leases: both see the same two members
    b.share.update([])
    for _ in range(30):  # interleaved ticks, as two processes would run them
        if a.step(block=False) + b.step(block=False) == 0 and q(db, "select count(*) from appointments")[0][0]:
            break
    members = sorted([a.share.owner, b.share.owner])
    assert a.share.members == b.share.members == members
    mine = {p for p in pids if owner_of(p, members) == a.share.owner}
    assert mine and mine != set(pids), "8 practices over 2 members: each gets some (rendezvous)"
    assert set(a.stored) == mine and set(b.stored) == set(pids) - mine  # each stored only its share
    assert a.share.held.keys() == mine and b.share.held.keys() == set(pids) - mine
    for p in pids:  # the lease names the holder; the other never read the stream (no consumer of its name)
        holder = a if p in mine else b
        assert text(r.get(keys.persist_lease(p))) == holder.share.owner
        consumers = {text(x["name"]) for x in r.xinfo_consumers(keys.events(p), keys.PERSIST_GROUP)}
        assert consumers == {holder.consumer}
    assert a.applied + b.applied == stream_entries(r, pids)  # every entry acknowledged once, by one of them
    assert_stored_exactly_once(db, set(booked))
    audited = q(db, "select count(*) from audit_events")[0][0]
    assert audited == sum(1 for p in pids for _, f in r.xrange(keys.events(p)) if int(f[b"seq"]))
    b.stop_sharing()  # b stops cleanly: a takes over its share at its next heartbeat
    a.share._last = 0
    a.refresh_streams()
    assert a.share.held.keys() == set(pids)


def test_readyz_and_metrics_name_each_shard_by_its_node(world: dict[str, Any]) -> None:
    """/readyz lists every primary (one on a single Redis) with its role and persister lag; /metrics has the lag
    per node and the live persisters."""
    c, r, db, target = world["client"], world["redis"], world["db"], world["target"]
    nodes = sorted(n.name for n in r.get_primaries()) if target.cluster else [node_of(r, "x")]
    ctxs: list[dict[str, Any]] = []
    while len(ctxs) < 6 or {node_of(r, ctx["practice_id"]) for ctx in ctxs} != set(nodes):  # a practice per shard
        assert len(ctxs) < 60, "random practice ids never reached every shard"
        ctxs.append(setup_practice(c, durations=(30,)))
    for ctx in ctxs:
        book_in(c, ctx, 1)
    entries: dict[str, int] = {}
    for ctx in ctxs:  # no persister has run: every entry waits
        node = node_of(r, ctx["practice_id"])
        entries[node] = entries.get(node, 0) + int(r.xlen(keys.events(ctx["practice_id"])))
    body = c.get("/readyz").json()
    assert body["status"] == "ready"
    assert [s["node"] for s in body["shards"]] == nodes
    assert all(s["reachable"] and s["role"] == "master" and s["keys"] > 0 for s in body["shards"])
    assert {s["node"]: s.get("lag_events", 0) for s in body["shards"]} == {n: entries.get(n, 0) for n in nodes}
    p = Persister(r, db, consumer="live", sharing="members", lease_ms=30_000)
    p.refresh_streams(force=True)
    text_ = c.get("/metrics").text
    for node, n in entries.items():
        assert f'booking_persister_node_lag_events{{node="{node}"}} {float(n)}' in text_
    assert "booking_persisters_live 1.0" in text_
    p.stop_sharing()
    assert "booking_persisters_live 0.0" in c.get("/metrics").text


def test_a_drain_leaves_alone_the_practices_a_running_persister_holds(world: dict[str, Any]) -> None:
    """Start-up reconciliation drains only the practices no persister holds: never one read by two at once."""
    c, r, db = world["client"], world["redis"], world["db"]
    ctxs = [setup_practice(c, durations=(30,)) for _ in range(3)]
    for ctx in ctxs:
        book_in(c, ctx, 1)
    running = Persister(r, db, consumer="running", sharing="members", lease_ms=30_000)
    running.refresh_streams(force=True)  # it holds every lease (the only member), has read nothing yet
    assert running.share.held.keys() == {ctx["practice_id"] for ctx in ctxs}
    drain = Persister(r, db, consumer="reconcile", sharing="free")
    assert drain.drain() == 0 and not drain.stored
    assert q(db, "select count(*) from audit_events")[0][0] == 0
    running.stop_sharing()  # gave them back: now a drain takes them
    again = Persister(r, db, consumer="reconcile", sharing="free")
    assert again.drain() > 0 and set(again.stored) == {ctx["practice_id"] for ctx in ctxs}
    assert not r.exists(*[keys.persist_lease(ctx["practice_id"]) for ctx in ctxs])  # a drain gives them back


def test_taking_over_a_lease_claims_what_the_dead_holder_read_before_anything_new(world: dict[str, Any]) -> None:
    c, r, db = world["client"], world["redis"], world["db"]
    ctx = setup_practice(c, durations=(30,))
    book_in(c, ctx, 2)
    stream = keys.events(ctx["practice_id"])
    dead = Persister(r, db, consumer="dead", sharing="members", lease_ms=300)
    dead.refresh_streams(force=True)
    read = dead._read(">", None)  # it read a batch, then died before writing it (no more heartbeats)
    assert read
    wait_until(lambda: not r.exists(keys.persist_lease(ctx["practice_id"])), 10, "the dead one's lease to run out")
    book_in(c, ctx, 1)  # newer entries, not yet read by anyone
    heir = Persister(r, db, consumer="heir", sharing="members", lease_ms=30_000)
    heir.refresh_streams(force=True)  # one heartbeat: the lease, and at once the dead one's entries
    owners = {text(x["name"]): int(x["pending"]) for x in r.xpending(stream, keys.PERSIST_GROUP)["consumers"]}
    assert owners == {"heir": len(read)}
    assert heir.step(block=False) > 0
    heir.drain()
    seqs = [x[0] for x in q(db, "select seq from audit_events order by chain_index")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 1 + 3 * 3  # schedule, then search-hold-book x3
    heir.stop_sharing()


def test_kill9_of_one_persister_mid_load_its_share_is_taken_over(world: dict[str, Any], tmp_path: Path) -> None:
    c, r, db, target = world["client"], world["redis"], world["db"], world["target"]
    env = {**serve_env(target.redis_url, world["url"]), **target.env}
    ctxs = [setup_practice(c, durations=(30,)) for _ in range(6)]
    pids = [ctx["practice_id"] for ctx in ctxs]
    procs = Procs(tmp_path)
    booked: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def load() -> None:  # bookings keep coming in every practice, round-robin, before, during and after the kill
        try:
            for i in range(10_000):
                if stop.is_set():
                    break
                for ctx in ctxs:
                    booked.extend(book_in(c, ctx, 1, day=i // 8))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def holders() -> dict[str, str]:
        return {p: text(r.get(keys.persist_lease(p)) or b"") for p in pids}

    def pending_of_others(survivor_owner: str) -> int:
        """Entries read and not acknowledged by a consumer other than the holder of the practice's lease."""
        n = 0
        for p in pids:
            info = r.xpending(keys.events(p), keys.PERSIST_GROUP)
            n += int(info["pending"] or 0) if holders()[p] != survivor_owner else 0
        return n

    try:
        lease = ["--lease-seconds", "3"]  # short, yet renewed in time on a loaded machine
        first = procs.start("persister-a", [*CLI, "persister", "--batch", "5", *lease], env)
        second = procs.start("persister-b", [*CLI, "persister", "--batch", "5", *lease], env)
        for proc in (first, second):
            wait_until(lambda p=proc: "consuming event streams" in procs.log_of(p), 60, "a persister to start")
        wait_until(lambda: r.scard(keys.PERSIST_MEMBERS) == 2, 30, "both persisters to be members")
        pair = sorted(text(m) for m in r.smembers(keys.PERSIST_MEMBERS))
        while len({owner_of(p, pair) for p in pids}) < 2:  # random ids: make sure each persister gets some
            assert len(pids) < 60, "random practice ids never reached both persisters"
            ctxs.append(setup_practice(c, durations=(30,)))
            pids.append(ctxs[-1]["practice_id"])
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        wait_until(lambda: len(set(holders().values()) - {""}) == 2, 30, "the two persisters to split the practices")
        before = holders()
        victim_owner = before[pids[0]]
        survivor_owner = next(o for o in before.values() if o and o != victim_owner)
        victim = first if _pid_of(victim_owner) == first.pid else second
        assert _pid_of(victim_owner) == victim.pid, (victim_owner, first.pid, second.pid)
        victims_share = {p for p, o in before.items() if o == victim_owner}
        wait_until(lambda: errors or len(booked) >= 30, 60, "some bookings")
        assert not errors, errors

        # The victim stops mid-load; what it read and had not acknowledged when it died is made certain: entries
        # read as the victim's consumer (as its next XREADGROUP would have) are pending for it when it is killed.
        os.kill(victim.pid, signal.SIGSTOP)
        consumer = victim_owner.split("/")[0]
        in_flight = 0
        for _ in range(100):
            for p in sorted(victims_share):
                got = r.xreadgroup(keys.PERSIST_GROUP, consumer, {keys.events(p): ">"}, count=5)
                in_flight += sum(len(entries) for _, entries in got or [])
            if in_flight:
                break
            stop.wait(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # kill -9 of its whole process group
        victim.wait(10)
        left_pending = pending_of_others(survivor_owner)
        print(f"killed {victim_owner} holding {left_pending} unacknowledged entries of {len(victims_share)} practices")
        assert left_pending >= in_flight > 0, (len(booked), errors, victims_share, consumer)
        killed_at = time.monotonic()
        wait_until(lambda: set(holders().values()) == {survivor_owner}, 30, "the survivor to take over every lease")
        print(f"takeover of every lease {time.monotonic() - killed_at:.1f} s after the kill (lease 3 s)")
        n = len(booked)
        wait_until(lambda: errors or len(booked) >= n + 18, 60, "more bookings after the takeover")
        stop.set()
        loader.join(30)
        assert not errors, errors
        wait_until(lambda: set(booked) <= {x[0] for x in q(db, "select id from appointments")}, 60, "every booking")
        wait_until(lambda: pending_of_others("") == 0 and _all_read(r, pids), 30, "every entry acknowledged")
    except BaseException:
        for proc in procs.started:
            print(f"--- {proc.args[-3:]} pid {proc.pid}:\n{procs.log_of(proc)[-3000:]}")
        raise
    finally:
        stop.set()
        procs.close()
    assert_stored_exactly_once(db, set(booked))
    for p in pids:  # order within each practice: seq 1..N in chain order, and in stream order
        seqs = [x[0] for x in q(db, "select seq from audit_events where practice_id = :p order by chain_index", p=p)]
        assert seqs == list(range(1, len(seqs) + 1))
        in_stream = [int(f[b"seq"]) for _, f in r.xrange(keys.events(p)) if int(f[b"seq"])]
        assert seqs == in_stream
    assert_audit_verifies(env)


def _pid_of(owner: str) -> int:
    """A lease owner is '<host>-<pid>-<thread>/<random>' (the consumer name, then the instance)."""
    return int(owner.split("/")[0].rsplit("-", 2)[1])


def _all_read(r: Any, pids: list[str]) -> bool:
    for p in pids:
        g = {text(x["name"]): x for x in r.xinfo_groups(keys.events(p))}[keys.PERSIST_GROUP]
        if int(g.get("lag") or 0) or int(g.get("pending") or 0):
            return False
    return True
