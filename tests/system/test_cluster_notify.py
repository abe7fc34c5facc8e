"""Notifications on a Redis Cluster: the outbox reads each practice's stream per node (no CROSSSLOT), rq and
rq-scheduler run on the standalone queue Redis (QUEUE_REDIS_URL), the jobs read appointments from the cluster.
The test bodies are tests/system/test_notifications.py's, on the fixtures below."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine.redis import clients
from tests import cluster_support
from tests.cluster_support import cluster_fields
from tests.support.http import next_weekday, search
from tests.system.test_cluster import practices_on_every_shard
from tests.system.test_notifications import (  # noqa: F401 - collected here, on the cluster
    World,
    book,
    make_world,
    test_confirmation_states_the_local_time_in_text_and_icalendar,
)

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

dev_cluster, cluster_url = cluster_support.dev_cluster, cluster_support.cluster_url


@pytest.fixture
def world(cluster_url: str) -> Iterator[World]:
    yield from make_world("24h,2h", "booking_notify_cluster", **cluster_fields(cluster_url))


def test_bookings_on_every_shard_are_confirmed(world: World, cluster_url: str) -> None:
    r = clients.redis_for(cluster_url, cluster=True)
    try:
        ctxs = practices_on_every_shard(world.client, r)
    finally:
        r.close()
    wanted = set()
    for ctx in ctxs:
        pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
        slot = search(world.client, pid, vt, next_weekday(2))[0]
        wanted.add(f"{book(world.client, pr, vt, slot['start'])['id']}:confirmation:0:1")
    assert world.inbox.wait_for(lambda i: wanted <= set(i.by_notification()), 30)
