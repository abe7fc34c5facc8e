"""Fixtures of the tests marked `cluster`: a local 6-node Redis Cluster (api/devcluster.py) started once per
session by the first test that needs it, stopped by process id when the session ends, whatever happened.

TEST_REDIS_CLUSTER_URL (comma-separated nodes) runs them on a cluster already running instead (`booking
dev-cluster`); it is flushed first. rq's queue stays on the single test Redis (TEST_REDIS_URL).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.devcluster import DevCluster
from engine.redis import clients
from engine.settings import Settings
from tests.support import processes
from tests.support.config import REDIS_URL, settings_for

GIVEN_URL = os.environ.get("TEST_REDIS_CLUSTER_URL") or None


def cluster_fields(cluster_url: str) -> dict[str, Any]:
    """The Settings fields of an app on the cluster, its queue on the single test Redis; book, cancel and
    reschedule wait for a replica, as `booking serve` does by default on a cluster."""
    return {"redis_url": cluster_url, "redis_cluster": True, "queue_redis_url": REDIS_URL, "replica_wait_ms": 500}


def cluster_settings(cluster_url: str, **kw: Any) -> Settings:
    return settings_for(**cluster_fields(cluster_url), **kw)


def cluster_env(cluster_url: str) -> dict[str, str]:
    """The environment of a `booking` process on the cluster."""
    return {"REDIS_URL": cluster_url, "REDIS_CLUSTER": "1", "QUEUE_REDIS_URL": REDIS_URL}


def show_node_logs(cluster: DevCluster) -> None:
    """Each node's redis.log in the report of a test that fails while the cluster runs (a node a fault test
    killed included): tests/support/process_logs.py."""
    for port in cluster.ports:
        processes.register_log(
            f"the cluster node on {port}",
            Path(cluster.folder) / str(port) / "redis.log",
            lambda: any(p.poll() is None for p in cluster.procs),
        )


@pytest.fixture(scope="session")
def dev_cluster() -> Iterator[DevCluster | None]:
    """The local cluster (None when TEST_REDIS_CLUSTER_URL names one already running)."""
    if GIVEN_URL is not None:
        yield None
        return
    cluster = DevCluster()
    atexit.register(cluster.stop)  # also when the session is interrupted before the fixture's teardown
    try:
        cluster.start()
    except RuntimeError as exc:
        pytest.fail(f"the cluster tests could not start a local Redis Cluster: {exc}")
    show_node_logs(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def cluster_url(dev_cluster: DevCluster | None) -> str:
    url = GIVEN_URL or (dev_cluster.url if dev_cluster is not None else "")
    r = clients.redis_for(url, cluster=True)
    try:
        r.flushall()  # every primary
    finally:
        r.close()
    return url


@pytest.fixture
def crsync(cluster_url: str) -> Iterator[Any]:
    """A synchronous cluster client."""
    r = clients.redis_for(cluster_url, cluster=True)
    yield r
    r.close()
