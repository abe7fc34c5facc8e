"""Every use of redis-py's private API, in one module (checked on redis-py 8.1.0 and 8.2.0:
tests/unit/test_redis_private.py). Nothing else in the project imports ``redis._*`` or sets a private attribute.

1. ``name_reply_codes``/``error_reply``: redis-py's reply-error table (``redis._parsers.base.BaseParser``) has no
   public way to name a reply code it does not know (BUSY, MISCONF, NOREPLICAS stay bare ``ResponseError``s).
2. ``command_table_once``: the asyncio cluster client's COMMAND table parser (``redis._parsers.commands``), read
   once instead of at every slot-map refresh (see its docstring).
3. ``Cluster``/``run``: below.

Commands of one hash slot sent to that slot's node alone (Redis Cluster, asyncio).

Every key of a practice shares its hash tag, so almost every batch the engine sends touches one slot. redis-py's
cluster pipeline would send such a batch to the right node too, but when any node of it fails it retries by
closing the client's connections to **every** node (``ClusterPipeline`` calls ``cluster_client.aclose()``):
requests in flight on the healthy shards then fail with "Connection closed" or an unconfirmed ``WAIT``
(tests/system/test_cluster_faults.py saw booking 503s on healthy shards while one primary was dead). Here a batch of
one slot is a pipeline of its node alone:

* a command the node answered ``MOVED`` did not run: the slot map is patched from the redirection (no refresh,
  no reconnect) and the command is sent again;
* ``ASK`` (the slot is migrating and the key is on the target already): sent again to the target, each command
  preceded by ``ASKING``;
* ``TRYAGAIN`` (a multi-key command whose keys are on both sides of a migration for a moment) and
  ``CLUSTERDOWN`` (a failover settling): again, 50 ms on; a slot still unsettled after about 2 s raises
  ``SlotUnsettledError`` (a ConnectionError: 503);
* a broken connection raises ``ConnectionError`` (503; a write in it may have run: never re-sent), after the
  client was told to relearn the slot map at its next command; it never closes other nodes' connections.

``trailer`` is a command sent after the batch in every round, on the same connection (``WAIT 1 <ms>``: WAIT only
counts the writes of its own connection). Its result is the one of the round in which the batch ran.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

from redis._parsers.base import BaseParser
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio.cluster import ClusterPipeline, PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def name_reply_codes(codes: Mapping[str, type[Exception]]) -> None:
    """Error replies ``CODE message`` raise ``codes[CODE]`` in every redis-py parser of the process."""
    for code, cls in codes.items():
        BaseParser.EXCEPTION_CLASSES.setdefault(code, cls)


def error_reply(message: str) -> Exception:
    """The exception redis-py raises for the error reply ``message`` (``"BUSY Redis is busy..."``)."""
    return BaseParser.parse_error(message)  # type: ignore[no-any-return, no-untyped-call]


class CommandTableOnce(AsyncCommandsParser):
    """redis-py 8.1's asyncio cluster client reads the COMMAND table again from the first primary it lists at every
    refresh of the slot map. After a primary died and before its replica is promoted, that primary may be the dead
    one: the refresh then fails, closes every connection, and commands of every shard fail until the promotion
    (tests/system/test_cluster_faults.py saw 503s on the healthy shards). The table never changes: read it once."""

    __slots__ = ()

    async def initialize(self, node: Any = None) -> None:
        if node is not None:
            self.node = node
        if not self.commands:
            await super().initialize(node)


def command_table_once() -> Any:
    return CommandTableOnce()


TRIES = 40  # redirections and TRYAGAIN (50 ms apart) before giving up: about 2 s of a migrating slot
TRY_AGAIN_S = 0.05
_BROKEN = (RedisConnectionError, RedisTimeoutError, AttributeError, RuntimeError)


class SlotUnsettledError(RedisConnectionError):
    """The slot kept redirecting or asking to try again for the whole budget (a migration that does not end)."""


async def run(
    cluster: Any,
    slot: int,
    commands: Sequence[Sequence[Any]],
    options: Sequence[dict[str, Any]] | None = None,
    trailer: Sequence[Any] | None = None,
) -> tuple[list[Any], Any]:
    """Each command's result (or its error, as a value) and the trailer's; see the module's text."""
    n = len(commands)
    opts = list(options) if options is not None else [{} for _ in commands]
    results: list[Any] = [None] * n
    pending = list(range(n))
    trailed: Any = None
    asking: Any = None
    for _ in range(TRIES):
        if cluster._initialize:  # first use, or a failure asked for the slot map to be read again
            await cluster.initialize()
        node = asking or cluster.nodes_manager.get_node_from_slot(slot)
        cmds = []
        for i in pending:
            if asking is not None:
                cmds.append(PipelineCommand(-1, "ASKING"))
            cmds.append(PipelineCommand(i, *commands[i], **opts[i]))
        if trailer is not None:
            cmds.append(PipelineCommand(n, *trailer))
        try:
            await node.execute_pipeline(cmds)
        except _BROKEN as exc:
            cluster._initialize = True  # relearn the slot map at the next command (redis-py's own reaction)
            if isinstance(exc, RedisError):
                raise
            # redis-py closes a dead node's connections when a refresh drops it, also one being connected here
            raise RedisConnectionError(f"the connection to {node.name} was closed under the call") from exc
        asking = None
        again: list[int] = []
        wait = False
        for c in cmds:
            if c.position < 0:
                continue
            if c.position == n:
                trailed = c.result
                continue
            res = c.result
            if isinstance(res, MovedError):  # (a subclass of AskError in redis-py: tested first)
                await cluster.nodes_manager.move_slot(res)
                again.append(c.position)
            elif isinstance(res, AskError):
                asking = cluster.nodes_manager.get_node(host=res.host, port=res.port) or asking
                if asking is None:
                    await cluster.nodes_manager.move_slot(res)  # an unknown target: learn it
                    asking = cluster.nodes_manager.get_node(host=res.host, port=res.port)
                again.append(c.position)
            elif isinstance(res, TryAgainError | ClusterDownError):  # CLUSTERDOWN: a failover is settling
                wait = True
                again.append(c.position)
            else:
                results[c.position] = res
        if not again:
            return results, trailed
        if wait:  # start again from the slot's owner, which asks again where it must
            asking = None
            await asyncio.sleep(TRY_AGAIN_S)
        pending = again
    raise SlotUnsettledError(f"slot {slot} kept moving for {TRIES} tries")


class SlotPipeline(ClusterPipeline):
    """A cluster pipeline whose commands of one slot go to that slot's node alone (``run``); a batch over
    several slots is redis-py's pipeline as before. Not for transactions."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        queue = list(getattr(self._execution_strategy, "_command_queue", ()))
        if not queue or self._transaction:
            return await super().execute(raise_on_error, allow_redirections)
        client = self.cluster_client
        if client._initialize:
            await client.initialize()
        slots = {await client._determine_slot(*c.args) for c in queue}
        if len(slots) != 1:
            token = _INSIDE.set(True)  # its retry's aclose() must not close every node's connections
            try:
                return await super().execute(raise_on_error, allow_redirections)
            finally:
                _INSIDE.reset(token)
        try:
            results, _ = await run(client, slots.pop(), [c.args for c in queue], [c.kwargs for c in queue])
        finally:
            await self.reset()  # type: ignore[no-untyped-call]
        if raise_on_error:
            for r in results:
                if isinstance(r, Exception):
                    raise r
        return results


_INSIDE = contextvars.ContextVar("inside_a_command", default=False)


class Cluster(AsyncCluster):
    """The engine's asyncio cluster client: pipelines of one slot never touch other nodes (``SlotPipeline``),
    and redis-py's own reactions that would close the connections to every node are made lazy:

    * a ``MOVED`` patches the slot map instead of closing every connection each ``reinitialize_steps``-th time
      (``reinitialize_steps=0``);
    * a command of a shard that has no primary (``CLUSTERDOWN``, a slot not covered) and a pipeline over several
      slots that failed made redis-py call ``aclose()`` inside the command: every node's connections closed,
      requests in flight on the healthy shards failed (tests/system/test_cluster_faults.py saw booking 503s). Inside a
      command, ``aclose()`` only asks for the slot map to be read again at the next command (whose refresh marks
      the connections for a reconnect once they are free, as redis-py does after a broken connection); the
      client's owner closing it still closes everything."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reinitialize_steps", 0)
        super().__init__(*args, **kwargs)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        token = _INSIDE.set(True)
        try:
            return await super().execute_command(*args, **kwargs)
        except (AttributeError, RuntimeError) as exc:
            # a connection closed under the command inside redis-py ("unable to perform operation on
            # <TCPTransport closed=True>", "'NoneType' object has no attribute 'writelines'"): a lost connection
            raise RedisConnectionError(f"the connection was closed under {args[0]!r}") from exc
        finally:
            _INSIDE.reset(token)

    async def aclose(self) -> None:
        if _INSIDE.get():
            self._initialize = True
            return
        await super().aclose()
        if self._initialize:  # closed by its owner while a refresh was due: super() skipped the nodes
            await self.nodes_manager.aclose()
            await self.nodes_manager.aclose("startup_nodes")

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisError("shard_hint is deprecated in cluster mode")
        return SlotPipeline(self, bool(transaction))  # type: ignore[abstract]
