"""The functional core on a real local Redis Cluster (3 primaries, 3 replicas; tests/cluster_support.py).

The same test bodies as on a single Redis run here: this module overrides the fixtures they use (``make_client``
and so ``client``, ``rsync``, ``server``, the persistence ``world``) with ones on the cluster, and imports the tests
(pytest collects an imported test in the importing module, with that module's fixtures and marks). The tests
written below cover what only a cluster has: practices on every shard, the per-stream reads of the persister.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.cluster import RedisCluster

from engine import keys
from engine.redis import clients
from persistence import audit
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from tests import cluster_support
from tests.cluster_support import cluster_env, cluster_fields, cluster_settings
from tests.integration import test_persistence
from tests.integration.test_lifecycle import (  # noqa: F401
    test_booked_hold_cannot_be_booked_twice,
    test_booking_30_minutes_removes_overlapping_slots_of_every_length_and_cancel_restores_them,
    test_every_change_appends_its_event_in_the_same_script,
    test_expired_hold_is_offered_again_and_cannot_be_booked_without_any_sweeper,
    test_expired_holds_are_audited_by_the_sweeper,
    test_idempotency_key_replays_the_first_answer,
    test_release_offers_the_interval_again_at_once,
)

# persistence: the persister's per-stream reads, order within a practice, reconciliation
from tests.integration.test_persistence import (  # noqa: F401
    rows,
    test_a_cancellation_and_a_new_booking_of_its_interval_in_one_batch_are_stored_in_order,
    test_a_refused_event_is_set_aside_and_holds_back_nothing,
    test_flushall_then_reconcile_restores_exactly_what_was_offered,
    test_one_batch_of_several_practices_extends_each_chain_and_head,
    test_persister_stores_bookings_and_a_verified_chain_and_replays_change_nothing,
    test_two_persisters_reading_out_of_order_keep_one_chain,
)
from tests.integration.test_reschedule import (  # noqa: F401
    test_failed_reschedules_change_nothing,
    test_reschedule_to_another_practitioner_moves_atomically,
)

# what lives in Redis is bounded: the appointment tidy (a SCAN over every primary), trimming and the outbox's catch-up
from tests.integration.test_retention import (  # noqa: F401
    test_a_running_notifier_still_holds_trimming_back,
    test_streams_are_trimmed_while_no_worker_runs_and_the_outbox_catches_up,
    test_the_tidy_removes_only_what_the_database_holds_and_reads_answer_the_same,
)
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice
from tests.support.servers import Server, serving, wait_until

# the functional core: search, hold, release, book, cancel, idempotency, events, expiry, reschedule
from tests.system.test_concurrency import test_200_concurrent_holds_on_one_slot_have_exactly_one_winner  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

# the cluster's own fixtures, registered in this module
dev_cluster, cluster_url, crsync = cluster_support.dev_cluster, cluster_support.cluster_url, cluster_support.crsync


# ----------------------------------------------------------------- the same fixtures, on the cluster
@pytest.fixture
def make_client(make_client: Callable[..., TestClient[Any]], cluster_url: str) -> Callable[..., TestClient[Any]]:
    """conftest's make_client, its apps on the cluster."""

    def make(background: bool = False, embedded: bool = False, **kw: Any) -> TestClient[Any]:
        assert not embedded, "the embedded store is never a cluster"
        return make_client(background, **{**cluster_fields(cluster_url), **kw})

    return make


@pytest.fixture
def rsync(crsync: Any) -> Any:
    return crsync


@pytest.fixture(scope="module")
def server(cluster_url: str, database_url: str) -> Iterator[Server]:
    with serving(database_url, cluster_env(cluster_url)) as s:
        yield s


@pytest.fixture
def world(cluster_url: str, make_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """tests/integration/test_persistence.py's world on the cluster: flushed, a fresh database, an app, a persister."""
    r = clients.redis_for(cluster_url, cluster=True)
    r.flushall()
    url = fresh_database("booking_persist_cluster")
    db = make_engine(url)

    async def run_reconcile(_redis_url: str, db_: Any, said: list[str]) -> Any:
        from engine.service import BookingEngine

        ar = clients.redis_for(cluster_url, cluster=True, asynchronous=True)
        sr = clients.redis_for(cluster_url, cluster=True)
        try:
            return await reconcile(BookingEngine(ar, cluster_settings(cluster_url)), sr, db_, out=said.append)
        finally:
            await ar.aclose()
            sr.close()

    monkeypatch.setattr(test_persistence, "run_reconcile", run_reconcile)
    c = make_client(database_url=url)
    persister = Persister(r, db, consumer="t1")
    yield {"client": c, "redis": r, "db": db, "url": url, "persister": persister, "cluster_url": cluster_url,
           "redis_url": cluster_url}  # fmt: skip
    db.dispose()
    r.close()


# ----------------------------------------------------------------- what only a cluster has
def test_every_client_is_a_cluster_client(client: Any, crsync: Any) -> None:
    app = client.app
    assert isinstance(app.state.redis, AsyncCluster)
    assert isinstance(app.state.redis_sync, RedisCluster)
    assert isinstance(crsync, RedisCluster)


def practices_on_every_shard(c: Any, r: RedisCluster) -> list[dict[str, Any]]:
    """Practices until each primary holds at least one (ids are random: a few suffice)."""
    by_node: dict[str, dict[str, Any]] = {}
    primaries = {n.name for n in r.get_primaries()}
    for _ in range(40):
        ctx = setup_practice(c, durations=(30,))
        by_node.setdefault(r.get_node_from_key(keys.tag(ctx["practice_id"])).name, ctx)
        if set(by_node) == primaries:
            return list(by_node.values())
    raise AssertionError(f"40 practices did not cover every primary: {sorted(by_node)}")


def test_practices_on_every_shard_are_booked_and_persisted_in_order(world: Any) -> None:
    c, db, r = world["client"], world["db"], world["redis"]
    ctxs = practices_on_every_shard(c, r)
    day = next_weekday(2)
    booked = {}
    for ctx in ctxs:
        pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
        slot = search(c, pid, vt, day)[0]
        h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]}).json()
        a = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": {"name": "A", "email": "a@b.org"}})
        assert a.status_code == 201, a.text
        assert c.post(f"/v1/appointments/{a.json()['id']}/cancel", json={}).status_code == 200
        booked[pid] = a.json()["id"]
        assert slot in search(c, pid, vt, day)  # offered again at once
    p = Persister(r, db, consumer="shards", batch=3)  # small batches: several ticks, each in order
    assert p.drain() > 0
    for pid, appt_id in booked.items():
        actions = [x[0] for x in rows(db, "select action from audit_events where practice_id = :p order by seq", p=pid)]
        assert actions == ["schedule", "search", "hold", "book", "cancel", "search"]
        assert rows(db, "select status, version from appointments where id = :i", i=appt_id) == [("cancelled", 2)]
    assert audit.verify(db, out=lambda _: None)


def test_reconcile_restores_the_practices_of_a_shard_that_lost_its_data(world: Any) -> None:
    """One primary restarts empty: reconciliation (whose SCAN of appointments must visit every primary) puts
    back exactly what that shard's practices offered and held, and leaves the other shards' as they were."""
    c, db, r, p = world["client"], world["db"], world["redis"], world["persister"]
    ctxs = practices_on_every_shard(c, r)
    day = next_weekday(2)
    booked: dict[str, str] = {}
    for ctx in ctxs:
        pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
        slot = search(c, pid, vt, day)[1]
        h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]}).json()
        a = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": {"name": "A", "email": "a@b.org"}})
        booked[pid] = a.json()["id"]
    p.drain()
    before = {ctx["practice_id"]: search(c, ctx["practice_id"], ctx["visit_types"][30], day) for ctx in ctxs}
    lost = ctxs[0]["practice_id"]
    node = r.get_node_from_key(keys.tag(lost))
    r.flushall(target_nodes=node)  # that shard restarted empty
    assert not r.exists(keys.appointment(lost, booked[lost]))
    said: list[str] = []
    report = asyncio.run(test_persistence.run_reconcile(world["cluster_url"], db, said))
    assert f"appointment {booked[lost]} (booked v1)" in report.restored
    assert not [x for x in report.restored if "appointment" in x and booked[lost] not in x]  # only that shard's
    assert not report.conflicts and not report.redis_only
    for ctx in ctxs:
        assert search(c, ctx["practice_id"], ctx["visit_types"][30], day) == before[ctx["practice_id"]]

    async def versions(pid: str) -> dict[str, Any]:
        from engine.restore import redis_appointment_versions
        from engine.service import BookingEngine

        ar = clients.redis_for(world["cluster_url"], cluster=True, asynchronous=True)
        try:
            return await redis_appointment_versions(BookingEngine(ar, cluster_settings(world["cluster_url"])), pid)
        finally:
            await ar.aclose()

    for ctx in ctxs:  # found by a SCAN of every primary, whichever shard holds the practice
        pid = ctx["practice_id"]
        assert asyncio.run(versions(pid)) == {booked[pid]: (1, "booked", ctx["practitioners"][0])}


# ----------------------------------------------------------------- a replica must confirm book, cancel, reschedule
def replica_stopped(dev_cluster: Any, r: RedisCluster, practice_id: str) -> Any:
    """SIGSTOP the replica of the practice's primary until the block ends (it cannot acknowledge anything)."""
    import contextlib
    import os
    import signal

    if dev_cluster is None:
        pytest.skip("needs the cluster this session started (not TEST_REDIS_CLUSTER_URL)")
    port = r.get_node_from_key(keys.tag(practice_id)).port
    replicas = dev_cluster.replicas_of(port)
    assert replicas, f"the primary on {port} has no replica"

    @contextlib.contextmanager
    def stopped() -> Iterator[None]:
        for proc in replicas:
            os.kill(proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for proc in replicas:
                os.kill(proc.pid, signal.SIGCONT)

    return stopped()


def replica_caught_up(crsync: Any, pid: str) -> None:
    """Wait until every replica of the practice's primary has the primary's replication offset."""
    primary = crsync.get_node_from_key(keys.tag(pid)).redis_connection

    def caught_up() -> bool:
        info = primary.info("replication")
        offset = int(info["master_repl_offset"])
        found = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return bool(found) and all(int(v["offset"]) >= offset for v in found)

    wait_until(caught_up, 30, "the replica to catch up")


def test_a_booking_no_replica_confirms_answers_503_and_stands(make_client: Any, crsync: Any, dev_cluster: Any) -> None:
    c = make_client(replica_wait_ms=200)
    ctx = setup_practice(c, durations=(30,))
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    slot = search(c, pid, vt, next_weekday(2))[0]
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]}).json()
    body = {"hold_id": h["id"], "patient": {"name": "A", "email": "a@b.org"}}
    primary = crsync.get_node_from_key(keys.tag(pid)).redis_connection
    waits = int(primary.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
    with replica_stopped(dev_cluster, crsync, pid):
        first = c.post("/v1/appointments", json=body, headers={"Idempotency-Key": "wait-1"})
    assert first.status_code == 503 and first.json()["code"] == "dependency_unavailable", first.text
    replica_caught_up(crsync, pid)  # resumed: the retry below must not need more than the 200 ms wait
    assert slot not in search(c, pid, vt, next_weekday(2))  # the booking stands on the primary
    again = c.post("/v1/appointments", json=body, headers={"Idempotency-Key": "wait-1"})
    assert again.status_code == 201, again.text  # the retry gets it
    appt = again.json()
    primary.script_flush()  # as after a failover to a node that never saw the scripts: healed, run once
    assert c.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200  # confirmed: 200
    assert c.get(f"/v1/appointments/{appt['id']}").json()["version"] == 2
    assert int(primary.info("commandstats")["cmdstat_wait"]["calls"]) >= waits + 2  # WAIT on the script's node
    with replica_stopped(dev_cluster, crsync, pid):
        h2 = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]}).json()
        b2 = c.post("/v1/appointments", json={"hold_id": h2["id"], "patient": {"name": "B", "email": "b@b.org"}})
        assert b2.status_code == 503
        booked = c.get(f"/v1/holds/{h2['id']}")
    assert booked.status_code == 409 and booked.json()["code"] == "hold_used"  # by the booking that stands
