"""The API's Redis client (engine/redis/asyncio_client.py, issue 11 items 9 and 10), against redis-servers of the tests'
own (each in its own process group, stopped in teardown):

* right after Redis restarts, the next read and the next write on connections pooled before the restart
  answer as usual, not 503;
* a connection that died without the process noticing (a silent TCP proxy stands in for a Redis that came
  back behind the same address) costs a read nothing (it is retried once on a fresh connection), while a
  write is not re-sent by the client: it answers 503 and nothing was written;
* past REDIS_POOL_SIZE busy connections, requests queue for one (all succeed); when the bounded wait runs out
  they answer 503 with Retry-After; and the app still shuts down while the pool is exhausted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.app import create_app
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice
from tests.support.processes import Procs
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def db_url() -> str:
    return fresh_database("booking_redis_client")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    procs = Procs(tmp_path)
    try:
        rs = RedisServer(procs, tmp_path / "redis")  # AOF: the data survives a restart
        rs.start()
        yield rs
    finally:
        procs.close()


def restart(rs: RedisServer) -> None:
    """Stop Redis at once and start it again on the same port with the same AOF (as a crash and restart)."""
    rs.kill9()
    rs.start()


def test_reads_and_writes_on_connections_pooled_before_a_redis_restart_answer(
    make_client: Any, own_redis: RedisServer, db_url: str
) -> None:
    c = make_client(redis_url=own_redis.url, database_url=db_url)
    ctx = setup_practice(c)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    slot = search(c, pid, vt, next_weekday(2))[0]
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]})
    assert h.status_code == 201, h.text

    restart(own_redis)
    r = c.get(f"/v1/practices/{pid}")  # a read: the first command after the restart
    assert r.status_code == 200, r.text

    restart(own_redis)
    w = c.delete(f"/v1/holds/{h.json()['id']}")  # a write: the release script is its first command
    assert w.status_code == 204, w.text


class SilentProxy:
    """A TCP proxy to Redis. ``silence()`` cuts the Redis side of every connection open now without telling
    the client (no FIN reaches it, as when Redis came back on another host behind the same address): the
    client learns it only when it sends its next command, which is dropped, and then the connection closes.
    Connections opened afterwards work."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.lock = threading.Lock()
        self.pairs: list[dict[str, Any]] = []
        self.dropped = 0  # commands that reached a silenced connection (never forwarded)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            pair = {"client": client, "upstream": upstream, "silent": False}
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, False), daemon=True).start()

    def _pump(self, pair: dict[str, Any], from_client: bool) -> None:
        src, dst = (pair["client"], pair["upstream"]) if from_client else (pair["upstream"], pair["client"])
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if from_client and pair["silent"]:
                if data:
                    with self.lock:
                        self.dropped += 1
                _close(pair["client"])
                return
            if not data:
                if from_client or not pair["silent"]:
                    _close(pair["client"])
                    _close(pair["upstream"])
                return  # a silenced connection's client side stays open until it is used
            try:
                dst.sendall(data)
            except OSError:
                return

    def silence(self) -> None:
        with self.lock:
            for pair in self.pairs:
                pair["silent"] = True
                _close(pair["upstream"])

    def close(self) -> None:
        _close(self.listener)
        with self.lock:
            for pair in self.pairs:
                _close(pair["client"])
                _close(pair["upstream"])


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def proxy(own_redis: RedisServer) -> Iterator[SilentProxy]:
    p = SilentProxy(own_redis.port)
    yield p
    p.close()


def test_a_read_on_a_silently_dead_connection_is_retried_once_and_a_write_is_not_resent(
    make_client: Any, proxy: SilentProxy, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import catalog

    monkeypatch.setattr(catalog, "SHARERS_TTL_S", 3600.0)  # read once below, then kept: the release's first command
    c = make_client(redis_url=proxy.url, database_url=db_url)
    ctx = setup_practice(c)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    slots = search(c, pid, vt, next_weekday(2))
    slot = slots[0]
    # a first release reads what the waitlist kit needs (the practice's room sharers) into the process's cache
    warm = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slots[-1]["start"]})
    assert warm.status_code == 201 and c.delete(f"/v1/holds/{warm.json()['id']}").status_code == 204

    proxy.silence()
    r = c.get(f"/v1/practices/{pid}")
    assert r.status_code == 200, r.text
    assert proxy.dropped == 1  # the first attempt did meet the dead connection

    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]})
    assert h.status_code == 201, h.text
    proxy.silence()
    w = c.delete(f"/v1/holds/{h.json()['id']}")  # a write: the release script is its first command
    assert (w.status_code, w.json()["code"]) == (503, "dependency_unavailable"), w.text
    assert "retry-after" in w.headers
    assert proxy.dropped == 2
    # the script was sent once, and dropped: the hold is still held
    assert c.get(f"/v1/holds/{h.json()['id']}").json()["status"] == "held"


def test_a_pipeline_of_reads_is_retried_once_and_one_with_a_write_is_not(proxy: SilentProxy) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from engine.redis import asyncio_client as redis_client

    async def go() -> None:
        r = redis_client.connect(settings_for(proxy.url))
        try:
            await r.set("bk:test:pipe", "1")
            proxy.silence()
            async with r.pipeline(transaction=False) as pipe:
                pipe.get("bk:test:pipe")
                pipe.exists("bk:test:pipe")
                assert await pipe.execute() == [b"1", 1]
            assert proxy.dropped == 1
            proxy.silence()
            with pytest.raises(RedisConnectionError):
                async with r.pipeline(transaction=False) as pipe:
                    pipe.get("bk:test:pipe")
                    pipe.incr("bk:test:pipe")
                    await pipe.execute()
            assert proxy.dropped == 2
            assert await r.get("bk:test:pipe") == b"1"  # the INCR was never re-sent
        finally:
            await r.delete("bk:test:pipe")
            await r.aclose()

    asyncio.run(go())


# ------------------------------------------------------------------------------------------------ the pool
def _app(redis_url: str, db_url: str, **kw: Any) -> Any:
    return create_app(settings_for(redis_url, database_url=db_url, **kw), background=False)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app, started and stopped in this event loop (unlike litestar's test clients, which run it in a
    thread of their own and wait for each request), so that requests here really run at the same time."""
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as c:
            yield c


async def _practice(c: httpx.AsyncClient) -> str:
    p = await c.post("/v1/practices", json={"name": "Pool", "timezone": "Europe/Paris"})
    assert p.status_code == 201, p.text
    return str(p.json()["id"])


def test_past_the_pool_size_requests_queue_for_a_connection_and_all_succeed(
    own_redis: RedisServer, db_url: str
) -> None:
    async def go() -> list[int]:
        async with serving(_app(own_redis.url, db_url, redis_pool_size=1, redis_pool_timeout_seconds=30.0)) as c:
            pid = await _practice(c)
            answers = await asyncio.gather(*(c.get(f"/v1/practices/{pid}") for _ in range(40)))
            waits = (await c.get("/metrics")).text
            assert "booking_redis_pool_wait_seconds_count" in waits
            return [a.status_code for a in answers]

    assert asyncio.run(go()) == [200] * 40


def test_when_the_bounded_pool_wait_runs_out_the_answer_is_503_with_retry_after(
    own_redis: RedisServer, db_url: str
) -> None:
    async def go() -> None:
        app = _app(own_redis.url, db_url, redis_pool_size=1, redis_pool_timeout_seconds=0.05)
        async with serving(app) as c:
            pid = await _practice(c)
            pool = app.state.redis.connection_pool
            held = await pool.get_connection()  # the pool's only connection stays busy
            try:
                r = await c.get(f"/v1/practices/{pid}")
            finally:
                await pool.release(held)
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "dependency_unavailable" and "overloaded" in r.json()["detail"]
            assert r.headers["retry-after"] == "1"
            assert (await c.get(f"/v1/practices/{pid}")).status_code == 200  # free again: served at once
            assert "booking_redis_pool_exhausted_total 1.0" in (await c.get("/metrics")).text

    asyncio.run(go())


def test_the_app_shuts_down_while_its_pool_is_exhausted_and_tasks_wait_for_it(
    own_redis: RedisServer, db_url: str
) -> None:
    """The shutdown a blocking pool was once blamed for hanging (commit ceeedd7): the only connection is
    busy for good, the sweeper (every 10 ms) and a request wait for it with a 60 s bound, and the app stops
    without waiting for either."""
    done = threading.Event()

    async def go() -> None:
        settings = settings_for(
            own_redis.url,
            database_url=db_url,
            redis_pool_size=1,
            redis_pool_timeout_seconds=60.0,
            sweep_interval_seconds=0.01,
        )
        app = create_app(settings, background=True)
        async with serving(app) as c:
            pool = app.state.redis.connection_pool
            held = await pool.get_connection()  # never released: the shutdown must not wait for it
            waiting = asyncio.create_task(c.get("/readyz"))
            await asyncio.sleep(0.1)  # the request and the sweeper now wait for the connection
            assert not waiting.done()
        # stopped; the request still waiting (a server would have drained it first) is given up here
        waiting.cancel()
        assert not held.is_connected  # the busy connection was closed with the pool
        done.set()

    worker = threading.Thread(target=asyncio.run, args=(go(),), daemon=True)
    worker.start()
    worker.join(45)
    assert done.is_set(), "the app did not shut down within 45 s"


def test_pool_settings_come_from_the_environment() -> None:
    from engine.settings import Settings

    s = Settings.from_env({"REDIS_POOL_SIZE": "7", "REDIS_POOL_TIMEOUT_SECONDS": "0.5"})
    assert (s.redis_pool_size, s.redis_pool_timeout_seconds) == (7, 0.5)
    assert (Settings.from_env({}).redis_pool_size, Settings.from_env({}).redis_pool_timeout_seconds) == (128, 2.0)
    for bad in ({"REDIS_POOL_SIZE": "0"}, {"REDIS_POOL_TIMEOUT_SECONDS": "0"}):
        with pytest.raises(ValueError):
            Settings.from_env(bad)


def test_only_commands_redis_flags_read_only_are_ever_retried() -> None:
    from engine.redis.asyncio_client import READ_ONLY

    writes = {"EVAL", "EVALSHA", "FCALL", "SCRIPT LOAD", "SET", "SADD", "HSET", "ZADD", "ZREMRANGEBYSCORE", "XADD"}
    assert not writes & READ_ONLY
    assert {"HGET", "HGETALL", "HMGET", "EXISTS", "PING", "SMEMBERS", "ZRANGEBYSCORE"} <= READ_ONLY


# ------------------------------------------------------------------------------------ packing with hiredis
_ARG = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["EVALSHA", "HMGET", "SCRIPT LOAD", "XINFO GROUPS", "SET"]), args=st.lists(_ARG, max_size=30)
)
def test_hiredis_packing_sends_the_bytes_redis_pys_packer_sends(name: str, args: list[Any]) -> None:
    from redis.asyncio.connection import Connection

    from engine.redis.asyncio_client import packing_with_hiredis

    fast, plain = packing_with_hiredis(Connection)(), Connection()
    assert b"".join(fast.pack_command(name, *args)) == b"".join(plain.pack_command(name, *args))
    pipeline = [(name, *args), ("HMGET", "k", *args[:3])]
    assert b"".join(fast.pack_commands(pipeline)) == b"".join(plain.pack_commands(pipeline))


def test_what_hiredis_refuses_gets_redis_pys_own_error() -> None:
    from redis.asyncio.connection import Connection
    from redis.exceptions import DataError

    from engine.redis.asyncio_client import packing_with_hiredis

    for bad in (None, True, [1]):
        with pytest.raises(DataError):
            packing_with_hiredis(Connection)().pack_command("SET", "k", bad)


def test_the_api_client_packs_with_hiredis_and_answers(redis_url: str) -> None:
    from engine.redis.asyncio_client import connect

    async def check() -> None:
        client = connect(settings_for(redis_url))
        try:
            assert "HiredisPacking" in client.connection_pool.connection_class.__name__
            await client.set("packing-check", "é" * 3)
            assert await client.get("packing-check") == "é".encode() * 3
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset("packing-hash", mapping={"a": 1, "b": 2.5})
                pipe.hmget("packing-hash", ["a", "b", "c"])
                assert (await pipe.execute())[1] == [b"1", b"2.5", None]
            assert await client.execute_command("SCRIPT LOAD", "return 1")
        finally:
            await client.delete("packing-check", "packing-hash")
            await client.aclose()

    asyncio.run(check())
