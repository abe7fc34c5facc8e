"""The waitlist's durable side on a Redis Cluster: each practice's entries and offers live on its shard, are
written behind to PostgreSQL, and a shard that restarted empty gets its practices' queues and live offers back
from reconciliation, the other shards' left as they were. On tests/system/test_cluster.py's fixtures."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from engine import keys
from engine.model import WaitlistRecord
from tests import cluster_support
from tests.integration import test_persistence
from tests.support.http import next_weekday, search
from tests.system.test_cluster import make_client, practices_on_every_shard, world  # noqa: F401 - the fixtures

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

dev_cluster, cluster_url = cluster_support.dev_cluster, cluster_support.cluster_url


def state(r: Any, pid: str) -> tuple[dict[str, WaitlistRecord], list[tuple[bytes, float]]]:
    raw = r.hgetall(keys.waitlist_entries(pid))
    entries = {k.decode(): msgspec.json.decode(v, type=WaitlistRecord) for k, v in raw.items()}
    return entries, r.zrange(keys.waitlist_queue(pid), 0, -1, withscores=True)


def test_a_shard_that_lost_its_data_gets_its_waitlists_and_offers_back(world: Any) -> None:  # noqa: F811
    c, r, p = world["client"], world["redis"], world["persister"]
    ctxs = practices_on_every_shard(c, r)
    day = next_weekday(2)
    for ctx in ctxs:
        pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
        slot = search(c, pid, vt, day)[1]
        h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]}).json()
        a = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": {"name": "A", "email": "a@b.org"}})
        for name in ("first", "second"):
            body = {"visit_type_id": vt, "from_date": day.isoformat(), "to_date": day.isoformat(),
                    "patient": {"name": name, "email": f"{name}@example.org"}}  # fmt: skip
            assert c.post(f"/v1/practices/{pid}/waitlist", json=body).status_code == 201
        assert c.post(f"/v1/appointments/{a.json()['id']}/cancel", json={}).status_code == 200  # an offer
    p.drain()
    before = {ctx["practice_id"]: state(r, ctx["practice_id"]) for ctx in ctxs}
    assert all(any(e.status == "offered" for e in b[0].values()) for b in before.values())
    lost = ctxs[0]["practice_id"]
    r.flushall(target_nodes=r.get_node_from_key(keys.tag(lost)))
    assert not r.exists(keys.waitlist_entries(lost))
    said: list[str] = []
    report = asyncio.run(test_persistence.run_reconcile(world["cluster_url"], world["db"], said))
    restored = [x for x in report.restored if x.startswith("waitlist entry")]
    assert len(restored) == 2 and all(lost in x for x in restored)  # only that shard's practice
    assert any("with its offer" in x for x in restored)
    for ctx in ctxs:
        assert state(r, ctx["practice_id"]) == before[ctx["practice_id"]]
