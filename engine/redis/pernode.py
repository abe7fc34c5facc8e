"""Batches over many practices sent node by node, so that a node that is down fails only its own commands
(the persister's reads, acknowledgements and leases on a Redis Cluster).

redis-py's cluster pipeline sends a batch to every node it touches and, when one node fails, raises for the
whole batch: while one shard had no primary, every persister stopped reading every shard (leases lapsed,
lag grew everywhere) until the failover. Here each node's commands go in a pipeline of that node alone; a node
that cannot be reached makes each of its commands' results that error (the caller skips those practices this
tick) and has the client read the slot map again (at most once a second); a command a node redirects (MOVED,
ASK, TRYAGAIN, CLUSTERDOWN: it did not run) is sent once more through the cluster client, which follows it.
On a single Redis it is one plain pipeline, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import AskError, ClusterDownError, RedisError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.redis import clients
from engine.storm import Storm

log = logging.getLogger("booking.persister")
REDIRECTED = (AskError, TryAgainError, ClusterDownError)  # MovedError is an AskError in redis-py
REFRESH_EVERY_S = 1.0

Command = tuple[str, Sequence[Any]]  # (a key that routes it, the command's arguments)


def run(redis: Any, commands: Sequence[Command]) -> list[Any]:
    """Each command's result, or its error as a value, in order."""
    if not commands:
        return []
    if not clients.is_cluster(redis):
        with redis.pipeline(transaction=False) as pipe:
            for _, args in commands:
                pipe.execute_command(*args)
            return list(pipe.execute(raise_on_error=False))
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for i, (key, _) in enumerate(commands):
        node = redis.get_node_from_key(key)
        by_node.setdefault(node.name, (node, []))[1].append(i)
    out: list[Any] = [None] * len(commands)
    for node, idx in by_node.values():
        try:
            with redis.get_redis_connection(node).pipeline(transaction=False) as pipe:
                for i in idx:
                    pipe.execute_command(*commands[i][1])
                got = pipe.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            _storm(node.name).failed(f"unreachable ({exc or type(exc).__name__}): its commands wait for the next tick")
            _relearn(redis, node.name)
            for i in idx:
                out[i] = exc
            continue
        if (calm := _storms.get(node.name)) is not None:
            calm.ok()
        for i, res in zip(idx, got, strict=True):
            if isinstance(res, REDIRECTED):
                try:
                    res = _follow(redis, commands[i])
                except RedisError as exc:
                    res = exc
            out[i] = res
    return out


def _follow(redis: Any, command: Command) -> Any:
    """A redirected command through the cluster client, routed by its key: the client follows MOVED and ASK."""
    key, args = command
    node = redis.get_node_from_key(key)
    return redis.execute_command(*args, target_nodes=node)


_last_refresh: dict[int, float] = {}
_storms: dict[str, Storm] = {}  # node name -> its outage, one log line each (engine/storm.py)


def _storm(node: str) -> Storm:
    storm = _storms.get(node)
    if storm is None:
        storm = _storms.setdefault(node, Storm(f"cluster routing: Redis node {node}", log))
    return storm


def _relearn(redis: Any, failed: str) -> None:
    now = time.monotonic()
    if now - _last_refresh.get(id(redis), 0.0) < REFRESH_EVERY_S:
        return
    _last_refresh[id(redis)] = now
    try:
        redis.nodes_manager.initialize(last_failed_node_name=failed)
    except Exception as exc:  # noqa: BLE001 - the next tick tries again
        log.warning("reading the cluster's slot map failed: %s", exc)
