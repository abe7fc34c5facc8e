"""The API's pipelined reads (engine/redis/pipelined.py) against real redis-servers: every caller gets its own reply when
hundreds are in flight at once, an error reply fails only its read, a write is refused, a lost connection is
replaced, a Redis that stopped answering fails the reads in flight within the timeout, and an app on a single
Redis reads a cached search's versions through them."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.redis import clients
from engine.redis.pipelined import PipelinedReads
from tests.support.config import REDIS_URL
from tests.support.http import next_weekday, search, setup_practice
from tests.support.processes import Procs
from tests.support.servers import RedisServer

pytestmark = pytest.mark.integration


def _reads(url: str, **kw: Any) -> PipelinedReads:
    client = aioredis.Redis.from_url(url, socket_timeout=kw.pop("timeout", 2.0))
    reads = PipelinedReads.for_client(client, **kw)
    assert reads is not None
    return reads


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    procs = Procs(tmp_path)
    try:
        rs = RedisServer(procs, tmp_path / "redis", aof=False)
        rs.start()
        yield rs
    finally:
        procs.close()


def test_hundreds_of_reads_in_flight_each_get_their_own_reply_and_an_error_stays_with_its_read(
    own_redis: RedisServer,
) -> None:
    url = own_redis.url.rsplit("/", 1)[0] + "/3"  # a database other than 0: SELECT is sent on connecting
    r = redis_sync.Redis.from_url(url)
    for i in range(300):
        r.hset(f"h{i}", mapping={"a": i, "b": f"v{i}"})
    r.set("a-string", "x")

    async def run() -> None:
        reads = _reads(url)
        try:
            order = list(range(300))
            random.Random(3).shuffle(order)
            got = await asyncio.gather(
                *(reads.call("HMGET", f"h{i}", "a", "b", "missing") for i in order),
                reads.call("HMGET", "a-string", "a"),  # WRONGTYPE: this read alone fails
                reads.call("HGETALL", "h7"),
                return_exceptions=True,
            )
            for i, reply in zip(order, got):
                assert reply == [str(i).encode(), f"v{i}".encode(), None]
            assert isinstance(got[300], ResponseError) and "WRONGTYPE" in str(got[300])
            assert got[301] == {b"a": b"7", b"b": b"v7"} or got[301] == [b"a", b"7", b"b", b"v7"]
            assert await reads.call("HMGET", "h1", "a") == [b"1"]  # the connection is still in step
            with pytest.raises(ValueError, match="not a read-only command"):
                await reads.call("HSET", "h1", "a", "2")
            assert r.hget("h1", "a") == b"1"
        finally:
            await reads.aclose()

    asyncio.run(run())
    r.close()


def test_a_caller_that_goes_away_leaves_the_others_answered(own_redis: RedisServer) -> None:
    r = redis_sync.Redis.from_url(own_redis.url)
    r.hset("h", mapping={"a": 1})

    async def run() -> None:
        reads = _reads(own_redis.url)
        try:
            first = asyncio.ensure_future(reads.call("HMGET", "h", "a"))
            gone = asyncio.ensure_future(reads.call("HMGET", "h", "missing"))
            last = asyncio.ensure_future(reads.call("HMGET", "h", "a", "a"))
            await asyncio.sleep(0)
            gone.cancel()
            assert await first == [b"1"] and await last == [b"1", b"1"]
            with pytest.raises(asyncio.CancelledError):
                await gone
            assert await reads.call("HMGET", "h", "a") == [b"1"]
        finally:
            await reads.aclose()

    asyncio.run(run())
    r.close()


def test_a_lost_connection_is_replaced_and_a_stopped_redis_is_a_connection_error(own_redis: RedisServer) -> None:
    r = redis_sync.Redis.from_url(own_redis.url)
    r.hset("h", mapping={"a": 1})

    async def run() -> None:
        reads = _reads(own_redis.url)
        try:
            assert await reads.call("HMGET", "h", "a") == [b"1"]
            assert r.client_kill_filter(_type="normal", skipme=True) >= 1  # its connection, closed by Redis
            assert await reads.call("HMGET", "h", "a") == [b"1"]  # sent again on a fresh connection
            own_redis.kill9()
            with pytest.raises(RedisConnectionError) as down:
                await reads.call("HMGET", "h", "a")
            assert isinstance(down.value, clients.UNREACHABLE)  # the engine's "Redis is down" (503 or stale)
        finally:
            await reads.aclose()

    asyncio.run(run())
    r.close()


@contextlib.asynccontextmanager
async def _silent_server(reply: bytes | None = None) -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a Redis that hangs), or answers ``reply`` to
    whatever it is sent."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while reply is not None and await reader.read(4096):
            writer.write(reply)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


def test_a_redis_that_stops_answering_fails_the_reads_in_flight_within_the_timeout() -> None:
    async def run() -> None:
        async with _silent_server() as port:
            reads = _reads(f"redis://127.0.0.1:{port}/0", timeout=0.3)
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()
                got = await asyncio.gather(*(reads.call("HMGET", "h", "a") for _ in range(5)), return_exceptions=True)
                assert all(isinstance(e, RedisTimeoutError) for e in got), got
                assert isinstance(got[0], clients.UNREACHABLE)
                assert loop.time() - started < 5  # bounded by the timeout, not hanging
                assert reads.failures >= 1
            finally:
                await reads.aclose()

    asyncio.run(run())


def test_a_redis_loading_its_data_is_unreachable_for_the_engine_not_an_error() -> None:
    """A restarted Redis answers -LOADING while it reads its AOF: as with redis-py, the engine sees Redis as down
    (503 or a stale answer), never a 500."""
    from redis.exceptions import BusyLoadingError

    async def run() -> None:
        async with _silent_server(b"-LOADING Redis is loading the dataset in memory\r\n") as port:
            reads = _reads(f"redis://127.0.0.1:{port}/0")
            try:
                with pytest.raises(BusyLoadingError) as loading:
                    await reads.call("HMGET", "h", "a")
                assert isinstance(loading.value, clients.UNREACHABLE)
            finally:
                await reads.aclose()

    asyncio.run(run())


def test_only_a_plain_tcp_client_of_one_redis_gets_pipelined_reads() -> None:
    import fakeredis

    assert PipelinedReads.for_client(fakeredis.aioredis.FakeRedis()) is None
    assert PipelinedReads.for_client(aioredis.Redis.from_url("rediss://127.0.0.1:6380/0")) is None
    assert PipelinedReads.for_client(aioredis.Redis.from_url("unix:///tmp/nothing.sock")) is None
    assert PipelinedReads.for_client(object()) is None
    reads = PipelinedReads.for_client(aioredis.Redis.from_url("redis://u:pw@127.0.0.1:6390/4"))
    assert reads is not None and (reads.port, reads.db, reads.username, reads.password) == (6390, 4, "u", "pw")


def test_an_app_on_a_single_redis_reads_cached_versions_through_them(make_client: Any) -> None:
    c = make_client(redis_url=REDIS_URL, search_cache_bytes=1 << 20)
    ctx = setup_practice(c)
    pid, vt, day = ctx["practice_id"], ctx["visit_types"][30], next_weekday(3)
    first = search(c, pid, vt, day)
    state = c.app.state
    hits, reads = state.engine.searcher.cache.hits, state.pipelined_reads.reads
    assert search(c, pid, vt, day) == first  # answered from the cache: its versions read pipelined
    assert state.engine.searcher.cache.hits > hits
    assert state.pipelined_reads.reads == reads + 1
