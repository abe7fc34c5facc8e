"""Running Lua scripts on Redis: the one place that registers them with redis-py (EVALSHA, loading a script a
server lost), for async and sync callers, on one node or on a cluster (each call sent to its slot's node alone).

What the scripts are (names, sources, KEYS and ARGV, the meaning of their replies) is declared in
``engine/scripts/registry.py``; this module only carries them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from engine import errors
from engine.codec import text
from engine.redis import clients
from engine.redis import private as slotnode
from engine.redis.errors import NoScriptError, ResponseError

Locate = Callable[[str, int], str]  # (script name, line of the source sent to Redis) -> 'lua/<file>.lua:<line>'
_SCRIPT_LINE = re.compile(r"user_script:(\d+)")


def located(exc: BaseException, name: str, locate: Locate | None) -> BaseException:
    """A Lua error reply names the line of the source Redis ran (the limits and the prelude in front of the
    script): the same error, its class kept, with each ``user_script:<n>`` followed by the file and line it comes
    from (``user_script:212 (lua/hold.lua:23)``). Anything else is returned as it is."""
    if locate is None or not isinstance(exc, ResponseError):
        return exc
    message = str(exc)
    shown = _SCRIPT_LINE.sub(lambda m: f"{m[0]} ({locate(name, int(m[1]))})", message)
    if shown == message:
        return exc
    out = type(exc)(shown)
    out.__cause__ = exc.__cause__
    return out


class ScriptCall(Protocol):
    """What a batch needs of a call: its script's name, KEYS and ARGV."""

    @property
    def script(self) -> str: ...
    @property
    def keys(self) -> list[str]: ...
    @property
    def args(self) -> list[Any]: ...


class Scripts:
    """The scripts of one async Redis client (registered once; EVALSHA with a fallback to EVAL).

    ``replica_wait_ms`` > 0 (a Redis Cluster): a successful call of a ``replicated`` script is followed by
    ``WAIT 1 <ms>`` on the connection that ran it (WAIT only counts that connection's own writes), and
    ``ReplicaUnconfirmedError`` is raised when no replica confirmed it in time: the change stands on the primary.
    """

    def __init__(
        self,
        redis: Any,
        sources: Mapping[str, str],
        replica_wait_ms: int = 0,
        replicated: Collection[str] = (),
        locate: Locate | None = None,
    ) -> None:
        self.redis = redis
        self.locate = locate
        self.cluster = clients.is_cluster(redis)  # a cluster pipeline refuses EVALSHA: callers check this
        self.replica_wait_ms = replica_wait_ms if self.cluster else 0
        self.replicated = frozenset(replicated)
        self._scripts = {name: redis.register_script(src) for name, src in sources.items()}
        self.observe: Callable[[str, float], None] | None = None  # (script name, seconds) of each call run alone

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        script = self._scripts[name]
        started = time.perf_counter()
        try:
            if not self.cluster or client is not None:
                return await script(keys=list(keys), args=list(args), client=client)
            return await self._run_on_slot(name, keys, args)
        except ResponseError as exc:
            raise located(exc, name, self.locate) from None
        finally:
            if self.observe is not None and client is None:  # a call inside a pipeline is timed with the pipeline
                self.observe(name, time.perf_counter() - started)

    async def run_batch(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Many calls in one round trip: a pipeline of EVALSHA (scripts Redis lost are loaded and their calls sent
        again); on a cluster, whose pipelines refuse EVALSHA, the calls concurrently. Each result or the exception
        of its call, in order; a connection failure raises."""
        if self.cluster:
            return list(
                await asyncio.gather(*(self.run(c.script, c.keys, c.args) for c in calls), return_exceptions=True)
            )
        out: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    c = calls[i]
                    pipe.execute_command("EVALSHA", self._scripts[c.script].sha, len(c.keys), *c.keys, *c.args)
                got = await pipe.execute(raise_on_error=False)
            missing = []
            for i, res in zip(todo, got):
                out[i] = located(res, calls[i].script, self.locate) if isinstance(res, ResponseError) else res
                if isinstance(res, NoScriptError):
                    missing.append(i)
            if not missing:
                break
            for name in {calls[i].script for i in missing}:
                await self.redis.script_load(self._scripts[name].script)
            todo = missing
        return out

    async def _run_on_slot(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """A cluster's script call, sent to its slot's node alone (``engine.redis.private``: MOVED, ASK and TRYAGAIN
        followed for about 2 s, other shards' connections never closed). A book, cancel or reschedule is followed
        by ``WAIT 1 <ms>`` on the same connection (WAIT only counts that connection's writes). A promoted replica
        that never loaded the script refuses it (NOSCRIPT: it did not run): loaded on every primary and sent
        again. A broken connection is never re-sent (the script may have run): it raises ConnectionError (503)."""
        script = self._scripts[name]
        wait = self.replica_wait_ms if name in self.replicated else 0
        slot = self.redis.keyslot(keys[0])
        for _ in range(3):
            (res,), acked = await slotnode.run(
                self.redis, slot, [("EVALSHA", script.sha, len(keys), *keys, *args)],
                trailer=("WAIT", 1, wait) if wait else None,
            )  # fmt: skip
            if not isinstance(res, NoScriptError):
                break
            await slotnode.run(self.redis, slot, [("SCRIPT", "LOAD", script.script)])  # that node: others may be down
        if isinstance(res, BaseException):
            raise res
        if not wait:
            return res
        if isinstance(acked, BaseException):
            if text(res[0]) == "OK":  # it ran; whether a replica has it is unknown (WAIT unblocked by a role change)
                raise errors.ReplicaUnconfirmedError(name, wait) from acked
            raise acked
        if int(acked) < 1 and text(res[0]) == "OK":
            raise errors.ReplicaUnconfirmedError(name, wait)
        return res


class SyncScripts:
    """The same for the synchronous callers (persister, retention, lease sharing, the notifier's outbox): registered
    once per client (EVALSHA, redis-py loading a script Redis lost)."""

    def __init__(self, redis: Any, sources: Mapping[str, str], locate: Locate | None = None) -> None:
        self._scripts = {name: redis.register_script(src) for name, src in sources.items()}
        self.locate = locate

    def __call__(self, call: ScriptCall) -> Any:
        try:
            return self._scripts[call.script](keys=list(call.keys), args=list(call.args))
        except ResponseError as exc:
            raise located(exc, call.script, self.locate) from None

    def sha(self, name: str) -> str:
        return str(self._scripts[name].sha)

    def text(self, name: str) -> str:
        return str(self._scripts[name].script)
