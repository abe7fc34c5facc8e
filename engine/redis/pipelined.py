"""Read-only commands of the hot path on one pipelined connection per process, without redis-py's per-command
machinery.

A cached search costs one read of the practice's versions (``HMGET``). Through redis-py's asyncio client that
read took about 40 % of the API's CPU for the search (docs/benchmarks.md): a pool checkout under a condition
and a timeout, packing in Python, a ``wait_for`` per reply, the release. Here every read of the process goes on
one connection: the commands asked in one event-loop iteration are packed by hiredis and written together, and
the replies, which Redis sends in order, are matched to their callers first in, first out.

Failures answer as redis-py's do, so the engine's handling is unchanged (``engine.redis.clients.UNREACHABLE``):

* not connected, the connection lost, or no reply within ``timeout_s``: ``redis.exceptions.ConnectionError``
  (or ``TimeoutError``) for every read in flight, and the connection is dropped; the next read connects again.
  A read whose connection was lost is sent once more on a fresh connection (reads change nothing), as
  ``engine.redis.asyncio_client`` retries reads;
* an error reply: the exception redis-py raises for it, for that read alone (``-ERR ...`` is a
  ``ResponseError``; ``-LOADING`` from a Redis that restarted and is reading its AOF is ``BusyLoadingError``, a
  ``ConnectionError``, so it counts as Redis unreachable and is tried once more).

Only read-only commands may be sent here (a write whose reply was lost must not be sent again). Single Redis
over TCP only: a cluster routes by slot, and TLS, Unix sockets and the embedded mode keep redis-py's client.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.redis import clients
from engine.redis.asyncio_client import READ_ONLY, Observe


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedReads) -> None:
        self.owner = owner
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.lost: BaseException | None = None
        self.out: list[bytes] = []  # packed commands of this loop iteration, written together
        self.flush_handle: asyncio.Handle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.fail(RedisConnectionError("a Redis reply arrived that no read was waiting for"))
                return
            fut = waiting.popleft()
            if fut.done():  # its caller went away (cancelled): the reply is dropped, the order kept
                continue
            if isinstance(reply, ResponseError):
                # as redis-py names it (with the codes engine/redis/clients.py adds: BUSY...): "-LOADING" (a restarted
                # Redis reading its AOF) is BusyLoadingError, so the engine's "Redis is down" path handles it
                fut.set_exception(clients.error_reply(str(reply)))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, error: BaseException) -> None:
        """Every read in flight fails with ``error``; the connection is closed and never used again."""
        if self.lost is None:
            self.lost = error
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(error)
        if self.transport is not None:
            self.transport.abort()
        if self.owner._proto is self:
            self.owner._proto = None


class PipelinedReads:
    """``await reads.call("HMGET", key, *fields)``: one read, pipelined with the others of this process."""

    def __init__(
        self,
        host: str,
        port: int,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        observe: Observe | None = None,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self.observe = observe
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sent_at: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.reads = self.failures = 0
        self.writes = 0  # round trips: the reads of one loop iteration go in one write (and come back together)

    @classmethod
    def for_client(cls, client: Any, observe: Observe | None = None) -> PipelinedReads | None:
        """Reads on the Redis ``client`` (a ``redis.asyncio.Redis``) talks to, or None when it is not a plain TCP
        connection to one Redis (a cluster, TLS, a Unix socket, fakeredis)."""
        from redis.asyncio.connection import Connection, SSLConnection

        pool: Any = getattr(client, "connection_pool", None)
        cls_ = getattr(pool, "connection_class", None)
        if not isinstance(cls_, type) or not issubclass(cls_, Connection) or issubclass(cls_, SSLConnection):
            return None
        if "fakeredis" in cls_.__module__ or any("fakeredis" in c.__module__ for c in cls_.__mro__):
            return None
        kw = pool.connection_kwargs
        return cls(
            kw.get("host", "localhost"),
            int(kw.get("port", 6379)),
            int(kw.get("db", 0) or 0),
            kw.get("username"),
            kw.get("password"),
            float(kw.get("socket_timeout") or 2.0),
            float(kw.get("socket_connect_timeout") or 1.0),
            observe,
        )

    async def call(self, *args: Any) -> Any:
        name = str(args[0]).upper()
        if name not in READ_ONLY:
            raise ValueError(f"{name} is not a read-only command: it may not be sent twice")
        started = time.perf_counter()
        try:
            for attempt in (0, 1):
                proto = self._proto or await self._connect()
                try:
                    return await self._send(proto, args)
                except RedisConnectionError:
                    # lost on a connection that was open: once more on a fresh one (a read changes nothing); a
                    # timeout (redis-py's TimeoutError, not a ConnectionError) is not retried: the wait is spent
                    if attempt:
                        raise
            raise AssertionError("unreachable")
        except (RedisConnectionError, RedisTimeoutError):
            self.failures += 1
            raise
        finally:
            self.reads += 1
            if self.observe is not None:
                self.observe(name, time.perf_counter() - started)

    def _send(self, proto: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        proto.waiting.append(fut)
        first = args[0]
        if isinstance(first, str) and " " in first:  # "XINFO GROUPS": words of their own, as redis-py sends them
            args = (*first.split(), *args[1:])
        proto.out.append(hiredis.pack_command(args))
        self._sent_at.append((fut, loop.time() + self.timeout_s))
        if proto.flush_handle is None:
            proto.flush_handle = loop.call_soon(self._flush, proto)
        if self._timer is None:
            self._timer = loop.call_at(loop.time() + self.timeout_s, self._check_timeouts)
        return fut

    @staticmethod
    def _flush(proto: _Protocol) -> None:
        proto.flush_handle = None
        out, proto.out = proto.out, []
        if proto.transport is None or proto.lost is not None:
            proto.fail(proto.lost or RedisConnectionError("Connection to Redis closed"))
            return
        proto.owner.writes += 1
        proto.transport.write(b"".join(out))

    def _check_timeouts(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._sent_at and self._sent_at[0][0].done():
            self._sent_at.popleft()
        if not self._sent_at:
            return
        if self._sent_at[0][1] <= now and self._proto is not None:
            self._proto.fail(RedisTimeoutError(f"no reply from Redis within {self.timeout_s} s"))
            self._sent_at.clear()
            return
        self._timer = loop.call_at(self._sent_at[0][1] if self._sent_at else now + self.timeout_s, self._check_timeouts)

    async def _connect(self) -> _Protocol:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            proto = await asyncio.wait_for(self._open(loop), self.connect_timeout_s)
        except (TimeoutError, OSError, ResponseError, RedisConnectionError) as exc:
            error = RedisConnectionError(f"Error connecting to Redis at {self.host}:{self.port}: {exc}")
            self._connecting.set_exception(error)
            self._connecting.exception()  # retrieved: the callers waiting on it get it raised
            self._connecting = None
            raise error from exc
        self._proto = proto
        self._connecting.set_result(proto)
        self._connecting = None
        return proto

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        _, proto = await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
        hello: list[tuple[Any, ...]] = []
        if self.password is not None:
            hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
        if self.db:
            hello.append(("SELECT", self.db))
        try:
            for command in hello:  # before any read: nothing else is in flight on this connection yet
                fut: asyncio.Future[Any] = loop.create_future()
                proto.waiting.append(fut)
                assert proto.transport is not None
                proto.transport.write(hiredis.pack_command(command))
                await fut
        except BaseException:
            proto.fail(RedisConnectionError("the connection was refused"))
            raise
        return proto

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._proto is not None:
            self._proto.fail(RedisConnectionError("the pipelined reads were closed"))
