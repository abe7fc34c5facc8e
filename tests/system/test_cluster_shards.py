"""Readiness and reconciliation per shard, on the real local cluster (persistence/shards.py): a shard that lost
its data is found per practice, only those practices are reconciled, the others are not written to, and a
booking made on that shard after the loss is never overwritten by the database's older state."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from engine import keys
from engine import restore as rs
from engine.codec import text
from engine.redis import clients
from engine.service import BookingEngine
from persistence import runtime
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from persistence.shards import lost_practices, node_of
from tests import cluster_support
from tests.cluster_support import cluster_settings
from tests.support.config import AUTH
from tests.support.databases import fresh_database, q
from tests.support.http import next_weekday, search
from tests.system.test_cluster import practices_on_every_shard

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
dev_cluster, cluster_url = cluster_support.dev_cluster, cluster_support.cluster_url


@pytest.fixture
def world(cluster_url: str) -> Iterator[dict[str, Any]]:
    r = clients.redis_for(cluster_url, cluster=True)
    r.flushall()
    url = fresh_database("booking_cluster_shards")
    db = make_engine(url)
    app = create_app(cluster_settings(cluster_url, database_url=url))
    with TestClient(app) as c:
        c.headers.update(AUTH)
        yield {"client": c, "redis": r, "db": db, "url": url, "cluster_url": cluster_url}
    db.dispose()
    r.close()


def book(c: Any, ctx: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    start = start or search(c, pid, vt, next_weekday(2))[0]["start"]
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})
    assert h.status_code == 201, h.text
    a = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "A", "email": "a@b.org"}})
    assert a.status_code == 201, a.text
    return a.json()  # type: ignore[no-any-return]


def practice_keys(r: Any, pid: str) -> dict[str, Any]:
    """Every key of the practice with its contents (SCAN visits every primary), but the persister's lease and the
    stream gaps its trimming records (the persister's own upkeep while no notifier runs, not reconciliation's)."""
    read = {"hash": r.hgetall, "zset": lambda k: r.zrange(k, 0, -1, withscores=True), "stream": r.xrange,
            "string": r.get, "set": r.smembers}  # fmt: skip
    found = [text(k) for k in r.scan_iter(match=keys.tag(pid) + "*", count=1000)]
    return {k: read[text(r.type(k))](k) for k in found if k not in (keys.persist_lease(pid), keys.stream_gaps(pid))}


def run_reconcile(cluster_url: str, db: Any, only: set[str]) -> Any:
    async def go() -> Any:
        ar = clients.redis_for(cluster_url, cluster=True, asynchronous=True)
        try:
            return await reconcile(BookingEngine(ar, cluster_settings(cluster_url)), None, db, practices_only=only)
        finally:
            await ar.aclose()

    return asyncio.run(go())


def test_a_flushed_shard_is_found_per_practice_and_only_its_practices_are_reconciled(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, r, db = world["client"], world["redis"], world["db"]
    ctxs = practices_on_every_shard(c, r)
    first = {ctx["practice_id"]: book(c, ctx) for ctx in ctxs}
    Persister(r, db, consumer="t").drain()
    assert lost_practices(r, db) == {}
    node = r.get_node_from_key(keys.PRACTICES)  # the shard holding the global practice set loses its data too
    lost_ctx = next(ctx for ctx in ctxs if node_of(r, ctx["practice_id"]) == node.name)
    lost_pid = lost_ctx["practice_id"]
    on_that_node = {p for p in q_ids(db) if node_of(r, p) == node.name}
    others = [ctx for ctx in ctxs if ctx["practice_id"] not in on_that_node]
    assert others, "practices on every shard"

    r.flushall(target_nodes=node)  # that shard restarted empty
    booked_elsewhere = book(c, others[0])  # the other shards serve on, meanwhile
    before = {ctx["practice_id"]: practice_keys(r, ctx["practice_id"]) for ctx in others}
    lost = lost_practices(r, db)
    assert set(lost) == on_that_node and all("marker missing" in why for why in lost.values())

    # a persister that checks its share names them in bk:v1:lost; /readyz shows them on their shard
    found: list[set[str]] = []
    checker = Persister(r, db, consumer="check", on_lost=lambda ids: found.append(ids) or set())
    assert set(checker.check_lost()) == on_that_node and found == [on_that_node]
    assert {text(x) for x in r.smembers(keys.PRACTICES)} == q_ids(db)  # the other shards' practices listed again
    ready = c.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded"
    by_node = {s["node"]: s for s in body["shards"]}
    assert set(by_node) == {n.name for n in r.get_primaries()}
    assert all(s["reachable"] and s["role"] == "master" and s["replicas"] == 1 for s in body["shards"])
    assert by_node[node.name]["lost_practices"] == sorted(on_that_node)
    assert not [s for n, s in by_node.items() if n != node.name and "lost_practices" in s]
    assert all("lag_events" in s for n, s in by_node.items() if n != node.name)

    # reconciliation of those practices; bookings are made on the lost shard in the middle of it, once the
    # schedule is back and before the appointments are: the old booking's interval looks free then
    real = rs.restore_schedule
    meanwhile: dict[str, dict[str, Any]] = {}

    async def restore_then_book(eng: Any, practice: Any, practitioner_id: str, schedule: Any) -> bool:
        done = await real(eng, practice, practitioner_id, schedule)
        if practice.id == lost_pid and not meanwhile:
            meanwhile["same_interval"] = book(c, lost_ctx, first[lost_pid]["start"])
            meanwhile["elsewhere"] = book(c, lost_ctx)
        return done

    monkeypatch.setattr(rs, "restore_schedule", restore_then_book)
    report = run_reconcile(world["cluster_url"], db, set(lost))
    assert set(report.practices) == on_that_node
    old = first[lost_pid]["id"]
    clash = [x for x in report.conflicts if old in x]  # reported, not restored: it would overlap
    assert len(clash) == 1 and meanwhile["same_interval"]["id"] in clash[0], report.conflicts
    for made in meanwhile.values():  # the bookings made after the loss stand as they were made
        got = c.get(f"/v1/appointments/{made['id']}").json()
        assert (got["status"], got["version"], got["start"]) == ("booked", 1, made["start"])
    assert not r.exists(keys.appointment(lost_pid, old))  # the older database state did not replace them
    for ctx in others:  # the other shards' practices: not a key written
        assert practice_keys(r, ctx["practice_id"]) == before[ctx["practice_id"]]
    assert c.get(f"/v1/appointments/{booked_elsewhere['id']}").json()["status"] == "booked"
    assert lost_practices(r, db) == {}
    body = c.get("/readyz").json()
    assert body["status"] == "ready" and not [s for s in body["shards"] if "lost_practices" in s]


def q_ids(db: Any) -> set[str]:
    return {row[0] for row in q(db, "select id from practices")}


def test_a_replica_that_missed_writes_is_found_by_the_audit_sequence_and_the_persister_reconciles_it(
    world: dict[str, Any],
) -> None:
    """As after a failover to a replica that missed the last writes: the practice is there, its last booking and
    audit numbers are not. The persister's check finds it and reconciles that practice alone."""
    c, r, db = world["client"], world["redis"], world["db"]
    ctxs = practices_on_every_shard(c, r)
    ctx, other = ctxs[0], ctxs[1]
    pid, pr = ctx["practice_id"], ctx["practitioners"][0]
    book(c, ctx)
    last = book(c, ctx)
    book(c, other)
    Persister(r, db, consumer="t").drain()
    seq = int(r.hget(keys.audit(pid), "seq"))
    # the promoted replica never saw the last booking (its hold, its book, their audit numbers)
    r.delete(keys.appointment(pid, last["id"]))
    r.zremrangebyscore(keys.claims(pid, pr), int(_epoch(last["start"])), int(_epoch(last["start"])))
    r.hset(keys.audit(pid), "seq", seq - 2)
    other_before = practice_keys(r, other["practice_id"])
    assert lost_practices(r, db) == {pid: f"audit seq {seq - 2} below the {seq} stored (Redis lost writes)"}

    settings = cluster_settings(world["cluster_url"], database_url=world["url"])
    p = Persister(
        r, db, consumer="p", sharing="members", on_lost=lambda ids: runtime.reconcile_practices(settings, db, ids)
    )
    p.step(block=False)  # its first step takes its share and checks it
    assert lost_practices(r, db) == {}
    got = c.get(f"/v1/appointments/{last['id']}").json()
    assert (got["status"], got["version"]) == ("booked", 1)
    assert int(r.hget(keys.audit(pid), "seq")) == seq
    assert not r.hlen(keys.LOST)
    assert practice_keys(r, other["practice_id"]) == other_before
    p.stop_sharing()


def _epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso).timestamp()
