"""Every Redis client of the project is built here, from the settings.

| mode (settings) | async: API, engine | sync: persister, reconcile, notifier, bench |
|---|---|---|
| embedded (no REDIS_URL) | ``redis.asyncio.Redis`` on the child server of api/embedded.py | ``redis.Redis`` on it |
| single Redis | ``redis.asyncio.Redis`` | ``redis.Redis`` |
| Redis Cluster (REDIS_CLUSTER=1) | ``engine.redis.private.Cluster`` (redis-py's, one slot's batches to its node) | ``redis.cluster.RedisCluster`` |

rq and rq-scheduler do not support Redis Cluster: ``queue_redis`` is always a standalone Redis (QUEUE_REDIS_URL,
or REDIS_URL when that is not a cluster). A cluster client is built from every node REDIS_URL names
(comma-separated); it learns the rest of the cluster from them, and keeps serving the shards that are up when
another shard has no primary (``require_full_coverage=False``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import ClusterError, OutOfMemoryError, ReadOnlyError, ResponseError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.redis import private
from engine.settings import ConfigError, Settings


class RedisBusyError(ResponseError):
    """``-BUSY``: a script or function ran past ``busy-reply-threshold`` (``lua-time-limit``); Redis refuses every
    other command until it ends."""


class RedisNoReplicasError(ResponseError):
    """``-NOREPLICAS``: fewer good replicas than ``min-replicas-to-write``; Redis refuses writes."""


class RedisMisconfError(ResponseError):
    """``-MISCONF``: Redis cannot persist (a failing RDB save with ``stop-writes-on-bgsave-error``); it refuses
    writes."""


# Error replies redis-py leaves as a bare ResponseError, named for every client of the process (redis-py's parsers,
# the hiredis one included, and engine/redis/pipelined.py read its table: engine/redis/private.py registers them;
# each class is still a ResponseError).
REPLY_CODES: dict[str, type[ResponseError]] = {
    "BUSY": RedisBusyError,
    "NOREPLICAS": RedisNoReplicasError,
    "MISCONF": RedisMisconfError,
}
private.name_reply_codes(REPLY_CODES)
error_reply = private.error_reply


# Redis, or (on a cluster) the shard of the key asked about, cannot answer right now: the API's 503 with
# Retry-After, and stale answers for searches (api/problems.py, engine/search.py). Not only a lost connection or a
# timeout: on a cluster a shard without a primary answers CLUSTERDOWN or has its slots uncovered; a Redis loading
# its data answers LOADING (BusyLoadingError, a ConnectionError), one running a script past the busy threshold
# BUSY, one out of memory with noeviction OOM, a replica (a failover demoted the node, or REDIS_URL names a
# replica) READONLY, a replica cut from its primary MASTERDOWN (a ClusterError), and one that cannot persist or
# lacks replicas MISCONF or NOREPLICAS. None of them says the request was wrong, and none changed anything.
UNREACHABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    SlotNotCoveredError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisBusyError,
    RedisNoReplicasError,
    RedisMisconfError,
)

ASYNC_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 2.0,
    "health_check_interval": 10,
    "max_connections": 512,
}
SYNC_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 10}


def node_urls(url: str) -> list[str]:
    """'redis://h:1,redis://h:2' or 'h:1,h:2' -> one URL per node."""
    out = []
    for part in url.split(","):
        part = part.strip()
        if part:
            out.append(part if "://" in part else f"redis://{part}")
    if not out:
        raise ConfigError("REDIS_URL names no node")
    return out


def _startup_nodes(urls: list[str], node_class: Any) -> list[Any]:
    nodes = []
    for u in urls:
        parts = urlsplit(u)
        nodes.append(node_class(parts.hostname or "127.0.0.1", parts.port or 6379))
    return nodes


def cluster_client(url: str, *, asynchronous: bool, **options: Any) -> Any:
    """A Redis Cluster client from a comma-separated node list."""
    urls = node_urls(url)
    if asynchronous:
        from redis.asyncio.cluster import ClusterNode as AsyncNode

        client = private.Cluster.from_url(
            urls[0], startup_nodes=_startup_nodes(urls, AsyncNode), require_full_coverage=False, **options
        )
        client.commands_parser = private.command_table_once()
        return client
    from redis.cluster import ClusterNode, RedisCluster

    return RedisCluster.from_url(
        urls[0], startup_nodes=_startup_nodes(urls, ClusterNode), require_full_coverage=False, **options
    )


def redis_for(url: str, *, cluster: bool, asynchronous: bool = False, **options: Any) -> Any:
    """A client of one Redis (``url``) or of a cluster (``url`` lists nodes); for tests and tools."""
    if cluster:
        return cluster_client(url, asynchronous=asynchronous, **options)
    if asynchronous:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(url, **options)
    import redis

    return redis.Redis.from_url(url, **options)


def _url(settings: Settings) -> str:
    url = settings.store_url
    if url is None:
        raise ConfigError(
            "the embedded mode's Redis is not running: `booking serve` starts it (api/embedded.py), or set REDIS_URL"
        )
    return url


def async_redis(settings: Settings) -> Any:
    """The engine's client (the API's hot path)."""
    return redis_for(_url(settings), cluster=settings.redis_cluster, asynchronous=True, **ASYNC_OPTIONS)


def sync_redis(settings: Settings) -> Any:
    """The persister's, reconciliation's and the notifier's client (threads)."""
    return redis_for(_url(settings), cluster=settings.redis_cluster, **SYNC_OPTIONS)


def queue_redis(settings: Settings) -> Any:
    """The standalone Redis of rq and rq-scheduler."""
    if settings.redis_url is None:
        return sync_redis(settings)
    url = settings.queue_url
    if url is None:
        raise ConfigError(
            "REDIS_CLUSTER=1 needs QUEUE_REDIS_URL: a standalone Redis for the notification queue "
            "(rq and rq-scheduler do not support Redis Cluster)"
        )
    return redis_for(url, cluster=False, **SYNC_OPTIONS)


def is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster as AsyncCluster
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster | AsyncCluster)
