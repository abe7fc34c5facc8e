"""A connection that redis-py's cluster client closes under a script call (while it refreshes the slot map after
a failover elsewhere) fails inside redis-py with AttributeError ('NoneType' object has no attribute 'writelines',
seen in tests/system/test_cluster_faults.py's kill -9 run): the script layer answers it as a lost connection (the API's
503 dependency_unavailable), never as an internal error (500)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from engine import ids, keys
from engine.redis import clients
from engine.scripts.registry import Lua
from tests import cluster_support

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
dev_cluster, cluster_url = cluster_support.dev_cluster, cluster_support.cluster_url


class ClosedUnderTheCall:  # on a single Redis
    """Stands for a registered script whose connection redis-py tore down mid-send."""

    def __init__(self, script: Any, exc: BaseException) -> None:
        self.script, self.sha, self.exc, self.calls = script.script, script.sha, exc, 0

    async def __call__(self, **_: Any) -> Any:
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("exc", [AttributeError("'NoneType' object has no attribute 'writelines'"), RuntimeError()])
def test_a_connection_closed_under_a_script_call_is_a_lost_connection(
    cluster_url: str, exc: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.asyncio.cluster import ClusterNode

    sent: list[Any] = []

    async def torn_down(self: Any, commands: Any) -> bool:
        sent.append(commands)
        raise exc

    async def go() -> None:
        r = clients.redis_for(cluster_url, cluster=True, asynchronous=True)
        try:
            await r.initialize()
            lua = Lua(r, 0)
            assert lua.cluster
            monkeypatch.setattr(ClusterNode, "execute_pipeline", torn_down)  # the way every script call is sent
            pid = ids.new_practice_id()
            with pytest.raises(RedisConnectionError) as caught:
                await lua.run("restore_seq", [keys.audit(pid)], [0])
            assert caught.value.__cause__ is exc and len(sent) == 1  # never sent again: it may have run
        finally:
            monkeypatch.undo()
            await r.aclose()
            await r.nodes_manager.aclose()

    asyncio.run(go())


def test_an_attribute_error_on_a_single_redis_is_not_hidden(redis_url: str) -> None:
    """Only the cluster client tears connections down under a call; elsewhere such an error stays what it is."""

    async def go() -> None:
        r = clients.redis_for(redis_url, cluster=False, asynchronous=True)
        try:
            lua = Lua(r, 0)
            stub = ClosedUnderTheCall(lua._scripts["restore_seq"], AttributeError("x"))
            lua._scripts["restore_seq"] = stub  # type: ignore[assignment]
            with pytest.raises(AttributeError):
                await lua.run("restore_seq", [keys.audit(ids.new_practice_id())], [0])
        finally:
            await r.aclose()

    asyncio.run(go())
