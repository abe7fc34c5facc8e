"""The harness of tests/system/test_cluster_faults.py: the topology of a local cluster read from the nodes themselves
(never from a client's cached slot map), the faults (a coordinated failover, a slot migration), and one load per
practice so that every answer is counted by shard."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import redis

from api.devcluster import DevCluster
from tests.support.faults import Load


class Node(NamedTuple):
    id: str
    port: int
    primary: bool
    failed: bool
    primary_id: str  # a replica's primary ('-' for a primary)
    slots: list[tuple[int, int]]


def node_client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=10, decode_responses=True)


def nodes(cluster: DevCluster) -> list[Node]:
    """`CLUSTER NODES` as the first node that answers sees it."""
    for port in cluster.ports:
        try:
            with node_client(port) as r:
                raw = r.execute_command("CLUSTER", "NODES")
        except redis.ConnectionError:
            continue
        out = []
        lines = raw if isinstance(raw, list) else str(raw).splitlines()
        for line in lines:
            f = line.split()
            if len(f) < 8:
                continue
            slots = []
            for s in f[8:]:
                if s.startswith("["):  # a slot being migrated or imported
                    continue
                lo, _, hi = s.partition("-")
                slots.append((int(lo), int(hi or lo)))
            flags = f[2].split(",")
            port_ = int(f[1].split("@", 1)[0].rsplit(":", 1)[1])
            out.append(Node(f[0], port_, "master" in flags, "fail" in flags, f[3], slots))
        return out
    raise AssertionError("no node of the cluster answers")


def owner(cluster: DevCluster, slot: int) -> Node:
    """The primary serving ``slot`` now."""
    for n in nodes(cluster):
        if n.primary and not n.failed and any(lo <= slot <= hi for lo, hi in n.slots):
            return n
    raise AssertionError(f"no primary serves slot {slot}")


def replica_of(cluster: DevCluster, primary: Node) -> Node:
    found = [n for n in nodes(cluster) if not n.primary and n.primary_id == primary.id]
    assert found, f"the primary on {primary.port} has no replica"
    return found[0]


def failover(cluster: DevCluster, primary: Node) -> Node:
    """`CLUSTER FAILOVER` on the primary's replica (the coordinated switch); returns the promoted node once the
    roles have swapped and the cluster is healthy again."""
    replica = replica_of(cluster, primary)
    with node_client(replica.port) as r:
        assert r.execute_command("CLUSTER", "FAILOVER") in ("OK", b"OK", True)
    deadline = time.monotonic() + 30
    while not (cluster.role(replica.port) == "master" and cluster.role(primary.port) == "slave"):
        assert time.monotonic() < deadline, f"the replica on {replica.port} was not promoted"
        time.sleep(0.02)
    cluster.wait_healthy(30)
    return replica


def migrate_slot(cluster: DevCluster, slot: int, source: Node, target: Node, batch: int = 1000) -> int:
    """Move one slot with its keys from ``source`` to ``target`` as `redis-cli --cluster reshard` does (SETSLOT
    IMPORTING / MIGRATING, MIGRATE in batches, SETSLOT NODE on every primary); returns the keys moved. A batch
    as large as a practice's keys keeps the slot's keys on one side at any instant."""
    with node_client(source.port) as src, node_client(target.port) as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id)
        moved = 0
        while True:
            names = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not names:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 10_000, "KEYS", *names)
            moved += len(names)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.id)
    for n in nodes(cluster):
        if n.primary and n.id not in (source.id, target.id):
            with node_client(n.port) as r:
                r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target.id)
    return moved


class Loads:
    """One Load (search -> hold -> book threads) per practice, so that answers are counted per shard."""

    def __init__(self, url: str, ctxs: list[dict[str, Any]], threads: int = 2) -> None:
        self.by_practice = {c["practice_id"]: Load(url, c, threads=threads) for c in ctxs}

    def __enter__(self) -> Loads:
        for load in self.by_practice.values():
            load.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for load in self.by_practice.values():
            load.stop_ev.set()
        for load in self.by_practice.values():
            load.stop()

    def set_phase(self, name: str) -> None:
        for load in self.by_practice.values():
            load.set_phase(name)

    def wait_for_more(self, n: int, timeout: float = 60) -> None:
        """``n`` more acknowledged bookings of every practice."""
        for load in self.by_practice.values():
            load.wait_for_more(n, timeout)

    def failures_since(self, t0: float, pid: str | None = None) -> list[tuple[float, str, str]]:
        """(seconds after ``t0``, step, what) of every 5xx and transport error since ``t0``."""
        chosen = [self.by_practice[pid]] if pid else list(self.by_practice.values())
        out = []
        for load in chosen:
            with load.lock:
                out += [(round(t - t0, 3), step, what) for t, step, what in load.failures_at if t >= t0]
        return sorted(out)

    def summary(self) -> str:
        return "\n".join(f"practice {pid}: {load.summary()}" for pid, load in self.by_practice.items())


def window(failures: list[tuple[float, str, str]]) -> float:
    """Seconds from the fault to the last failure it caused (0 when nothing failed)."""
    return max((t for t, _, _ in failures), default=0.0)
