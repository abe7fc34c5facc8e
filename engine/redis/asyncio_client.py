"""The API's Redis client: one bounded, blocking connection pool per process; reads retried once on a fresh
connection, writes never re-sent by the client.

Why reads only, and why per command on one client rather than two clients: a script call that writes (hold,
book, cancel, reschedule, and the search with its audit event) may have run although its answer was lost;
re-sending it could book twice or answer ``slot_unavailable`` to the caller that in fact won. Until the
scripts recognise a retry by its request id, only commands Redis itself flags read-only are retried, and the
choice is made per command (and per pipeline: retried only if every command in it is a read). One client and
one pool keep ``REDIS_POOL_SIZE`` the real bound of the process's connections, and the engine needs no second
client to route its reads through.

Two causes of the 503s right after a Redis restart, both handled here:

* redis-py 8.1 hands out pooled connections the server already closed (redis/redis-py#4252: the checkout
  probe is skipped while maintenance notifications are "auto"). They are switched off (a Redis Enterprise
  feature this project does not use), so a connection whose close the process has seen is replaced before
  any command is sent on it: safe for writes too.
* A connection whose close the process has not seen yet (the new Redis came up behind the same address, a
  failover, a reply lost in flight) fails on first use. A read then runs once more, after a short backoff, on
  a fresh connection (redis-py's ``Retry``); a write answers 503 and the client retries it (with the same
  ``Idempotency-Key``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from engine.settings import Settings
from engine.storm import Storm

log = logging.getLogger("booking.redis")
Observe = Callable[[str, float], None]

# Commands Redis flags `readonly` (COMMAND INFO) that the API sends: running one twice changes nothing.
READ_ONLY = frozenset(
    {
        "PING", "EXISTS", "TYPE", "TTL", "PTTL", "GET", "MGET", "STRLEN",
        "HGET", "HMGET", "HGETALL", "HKEYS", "HVALS", "HEXISTS", "HLEN", "HSCAN",
        "SMEMBERS", "SISMEMBER", "SCARD", "SSCAN",
        "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZSCORE", "ZCARD", "ZCOUNT", "ZSCAN",
        "LLEN", "LRANGE", "XLEN", "XRANGE", "XREVRANGE", "XPENDING", "XINFO GROUPS", "XINFO STREAM",
        "SCAN", "DBSIZE", "INFO", "EVALSHA_RO", "EVAL_RO", "FCALL_RO",
    }
)  # fmt: skip


class PoolExhaustedError(RedisConnectionError):
    """Every connection of this process's pool stayed busy for the whole bounded wait."""


def _name(command: Any) -> str:
    return (command.decode() if isinstance(command, bytes) else str(command)).upper()


def _retryable(error: Exception) -> bool:
    # A pool that stayed full is not a broken connection: retrying would double the bounded wait.
    return not isinstance(error, PoolExhaustedError)


# the reads' retries, one INFO line per storm of them (a stale connection after a restart: two lines; an outage:
# two, not one per request); a read that succeeds ends it (engine/storm.py)
READ_RETRIES = Storm("redis reads", log, level=logging.INFO)


async def _after_failure(error: Exception) -> None:
    """The failed connection was already closed by redis-py; the retry takes one from the pool, connected
    afresh (the closed one, or another one that passes the checkout probe)."""
    READ_RETRIES.failed(f"{error} (each read is retried once on a fresh connection)")


def read_retry() -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.25), retries=1)


class BoundedPool(aioredis.BlockingConnectionPool):
    """A blocking pool: past ``max_connections`` busy connections a command waits (FIFO-ish) up to ``timeout``
    seconds for one, then raises PoolExhaustedError (503 with Retry-After). ``observe_wait`` sees every wait."""

    observe_wait: Callable[[float], None] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().get_connection()  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise PoolExhaustedError(
                    f"all {self.max_connections} Redis connections of this process stayed busy for {self.timeout} s"
                ) from exc
            raise
        finally:
            if self.observe_wait is not None:
                self.observe_wait(time.perf_counter() - started)


class ReadRetryingPipeline(Pipeline):
    read_retry: Retry
    observe: Observe | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = list(self.command_stack)
        parent = super().execute
        started = time.perf_counter()
        try:
            if self.is_transaction or self.explicit_transaction or self.watching or not stack:
                return await parent(raise_on_error)
            if not all(_name(args[0]) in READ_ONLY for args, _ in stack):
                return await parent(raise_on_error)

            async def attempt() -> list[Any]:
                self.command_stack = list(stack)  # execute() empties the pipeline even when it fails
                return await parent(raise_on_error)

            got = await self.read_retry.call_with_retry(attempt, _after_failure, is_retryable=_retryable)
            READ_RETRIES.ok()
            return got
        finally:
            if self.observe is not None and stack:
                self.observe("PIPELINE", time.perf_counter() - started)


class ReadRetryingRedis(aioredis.Redis):
    """``redis.asyncio.Redis`` whose read-only commands and read-only pipelines are retried once; everything
    else (scripts above all) is sent at most once. ``observe(command, seconds)`` sees every round trip."""

    read_retry: Retry
    observe: Observe | None = None
    connection_pool: BoundedPool  # connect() builds every one on a BoundedPool (its ``observe_wait``)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = _name(args[0])
        parent = super().execute_command
        started = time.perf_counter()
        try:
            if name in READ_ONLY:
                got = await self.read_retry.call_with_retry(
                    lambda: parent(*args, **options),  # type: ignore[no-untyped-call]
                    _after_failure,
                    is_retryable=_retryable,
                )
                READ_RETRIES.ok()
                return got
            return await parent(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            if self.observe is not None:
                self.observe(name, time.perf_counter() - started)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> ReadRetryingPipeline:
        pipe = ReadRetryingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.read_retry, pipe.observe = self.read_retry, self.observe
        return pipe


_PACKING: dict[type, type] = {}


def packing_with_hiredis(cls: type) -> type:
    """``cls`` (a ``redis.asyncio`` connection class) packing commands with hiredis's C packer. redis-py's
    synchronous client does so when hiredis is installed; its asyncio one packs in Python (about 37 µs for a
    search audit's EVALSHA and 12 µs for an HMGET, against 5 and 1 µs; docs/benchmarks.md). The bytes are the
    same (tests/system/test_redis_client.py); anything hiredis refuses (None, a bool) goes through redis-py's packer,
    which raises its own error for it."""
    try:
        import hiredis
    except ImportError:  # the `redis[hiredis]` extra is a dependency; without it, redis-py's packer
        return cls
    if cls in _PACKING:
        return _PACKING[cls]
    pack = hiredis.pack_command

    class HiredisPacking(cls):  # type: ignore[misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            first = args[0]
            if isinstance(first, str) and " " in first:  # "SCRIPT LOAD", "XINFO GROUPS": words of their own
                args = (*first.split(), *args[1:])
            try:
                return [pack(args)]
            except TypeError:
                return list(super().pack_command(*args))

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = f"HiredisPacking{cls.__name__}"
    _PACKING[cls] = HiredisPacking
    return HiredisPacking


def _no_maintenance_notifications() -> dict[str, Any]:
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # redis-py before 6.3 has no such feature (and no such bug)
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


def _connection_class(url: str) -> type:
    """The connection class redis-py would pick for ``url``'s scheme, packing with hiredis (given to the pool's
    constructor: redis-py's public ``connection_class`` option, nothing patched afterwards)."""
    from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

    scheme = url.split("://", 1)[0].lower()
    base = {"rediss": SSLConnection, "unix": UnixDomainSocketConnection}.get(scheme, Connection)
    return packing_with_hiredis(base)


def connect(settings: Settings, observe: Observe | None = None) -> ReadRetryingRedis:
    assert settings.store_url is not None
    pool = BoundedPool.from_url(
        settings.store_url,
        connection_class=_connection_class(settings.store_url),
        max_connections=settings.redis_pool_size,
        timeout=settings.redis_pool_timeout_seconds,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),  # redis-py itself never re-sends a command: see read_retry
        **_no_maintenance_notifications(),
    )
    client = ReadRetryingRedis.from_pool(pool)
    client.read_retry, client.observe = read_retry(), observe  # type: ignore[attr-defined]
    return client  # type: ignore[return-value]


async def close(client: Any, timeout: float = 5.0) -> None:
    """Close a client and its pool without waiting on anything unbounded: in-use connections are closed too
    (their commands, if any, fail), and the whole close gives up after ``timeout`` seconds."""
    try:
        await asyncio.wait_for(client.aclose(), timeout)
    except Exception as exc:  # noqa: BLE001 - shutting down: log and go on
        log.warning("closing the Redis client: %s", exc or type(exc).__name__)
