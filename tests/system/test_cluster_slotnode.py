"""One slot's commands go to that slot's node alone (engine/redis/private.py), on the real local cluster.

The defect it mends: redis-py's cluster pipeline answers a failing node by closing the client's connections to
every node, so one dead primary failed requests in flight on the healthy shards (booking 503s in
tests/system/test_cluster_faults.py). Here a batch of one slot follows MOVED and ASK as the cluster pipeline did, and a
broken node fails only its own batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.cluster import ClusterNode, ClusterPipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from engine import ids, keys
from engine.redis import clients
from engine.redis import private as slotnode
from tests import cluster_support
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
dev_cluster, cluster_url = cluster_support.dev_cluster, cluster_support.cluster_url


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _client(url: str) -> Any:
    r = clients.redis_for(url, cluster=True, asynchronous=True)
    await r.initialize()
    return r


async def _close(r: Any) -> None:
    """``aclose`` closes nothing while the client waits to relearn the slot map (after a failed node)."""
    await r.aclose()
    await r.nodes_manager.aclose()
    await r.nodes_manager.aclose("startup_nodes")


def _two_practices_on_two_primaries(r: Any) -> tuple[str, str]:
    first = ids.new_practice_id()
    while True:
        other = ids.new_practice_id()
        if r.get_node_from_key(keys.practice(other)).name != r.get_node_from_key(keys.practice(first)).name:
            return first, other


def test_a_one_slot_pipeline_answers_as_the_cluster_pipeline_with_redis_pys_reply_shapes(cluster_url: str) -> None:
    async def go() -> None:
        r = await _client(cluster_url)
        try:
            pid = ids.new_practice_id()
            h, z = keys.practice(pid), keys.hold_expiries(pid)
            await r.hset(h, mapping={"a": "1", "b": "2"})
            await r.zadd(z, {"x": 1, "y": 2})
            pipe = r.pipeline(transaction=False)
            assert isinstance(pipe, slotnode.SlotPipeline)
            pipe.hgetall(h)
            pipe.zrangebyscore(z, "-inf", "+inf", withscores=True)
            pipe.zcard(z)
            ours = await pipe.execute()
            theirs = await ClusterPipeline(r, False).hgetall(h).zrangebyscore(z, "-inf", "+inf", withscores=True).zcard(
                z
            ).execute()  # fmt: skip
            assert ours == theirs == [{b"a": b"1", b"b": b"2"}, [(b"x", 1.0), (b"y", 2.0)], 2]
            await r.delete(h, z)
        finally:
            await _close(r)

    run(go())


def test_a_moved_slot_is_followed_and_the_slot_map_patched_without_closing_connections(cluster_url: str) -> None:
    async def go() -> None:
        r = await _client(cluster_url)
        try:
            pid, other = _two_practices_on_two_primaries(r)
            key = keys.practice(pid)
            slot = r.keyslot(key)
            await r.set(key, "here")
            owner = r.get_node_from_key(key)
            wrong = r.get_node_from_key(keys.practice(other))
            r.nodes_manager.slots_cache[slot] = [wrong]  # a stale map: the client believes another primary owns it
            pipe = r.pipeline(transaction=False)
            pipe.get(key)
            assert await pipe.execute() == [b"here"]  # MOVED followed
            assert r.nodes_manager.slots_cache[slot][0].name == owner.name  # and the map patched
            await r.delete(key)
        finally:
            await _close(r)

    run(go())


def test_a_dead_node_fails_only_its_own_batch_and_never_the_calls_in_flight_elsewhere(cluster_url: str) -> None:
    """A batch for a node that refuses connections raises ConnectionError, while a call in flight on another
    shard (a BLPOP waiting for its value, sent as the engine sends a booking and its WAIT: to its node alone,
    never re-sent) is untouched. redis-py's own cluster pipeline closes that call's connection."""

    async def in_flight_survives(pipeline: Any) -> tuple[BaseException | None, Any, bytes]:
        r = await _client(cluster_url)
        try:
            pid, other = _two_practices_on_two_primaries(r)
            waiting_on = keys.practice(other) + ":inbox"
            dead = ClusterNode("127.0.0.1", free_port())
            r.nodes_manager.slots_cache[r.keyslot(keys.practice(pid))] = [dead]  # this practice's primary is gone
            blpop = asyncio.create_task(  # 1.5 s: below the client's 2 s socket timeout
                slotnode.run(r, r.keyslot(waiting_on), [("BLPOP", waiting_on, 1.5)])
            )
            await asyncio.sleep(0.2)  # the BLPOP is on the wire, its connection in use
            failed: BaseException | None = None
            try:
                await pipeline(r).get(keys.practice(pid)).execute()
            except RedisConnectionError as exc:
                failed = exc
            await asyncio.sleep(0.1)
            writer = await _client(cluster_url)
            await writer.rpush(waiting_on, "value")
            await _close(writer)
            got = await asyncio.gather(blpop, return_exceptions=True)
            return failed, got[0] if isinstance(got[0], BaseException) else got[0][0][0], waiting_on.encode()
        finally:
            await _close(r)

    failed, got, waited_on = run(in_flight_survives(lambda r: r.pipeline(transaction=False)))
    assert isinstance(failed, RedisConnectionError)
    assert list(got) == [waited_on, b"value"]


@pytest.mark.parametrize("exc", [RuntimeError("unable to perform operation on <TCPTransport closed=True>"),
                                 AttributeError("'NoneType' object has no attribute 'writelines'")])  # fmt: skip
def test_a_plain_command_whose_connection_was_closed_under_it_is_a_lost_connection(
    cluster_url: str, exc: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in the fault tests as a booking 500: the abuse-limit ZREM after the booking, its connection closed by a
    refresh. It is a ConnectionError (the API's 503; the route counts it and answers the booking)."""

    async def go() -> None:
        r = await _client(cluster_url)
        try:

            async def closed(self: Any, *args: Any, **kwargs: Any) -> Any:
                raise exc

            monkeypatch.setattr(ClusterNode, "execute_command", closed)
            with pytest.raises(RedisConnectionError) as caught:
                await r.zrem(keys.client_holds("127.0.0.1"), "h1")
            assert caught.value.__cause__ is exc
        finally:
            monkeypatch.undo()
            await _close(r)

    run(go())
