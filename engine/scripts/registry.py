"""Loads the Lua scripts once per Redis client and turns their status replies into typed results or errors.

Every script replies either with a bare value (``search``, ``schedule``, ``expire``) or with an array whose
first element is a status: ``OK`` and a few benign statuses are returned to the caller as typed values; every
other status is a domain error, made in one place (``STATUS_ERRORS``) so that a status means the same thing
whichever script answers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from engine import errors, limits
from engine.codec import text
from engine.redis import clients
from engine.redis import private as slotnode
from engine.redis.errors import NoScriptError

LUA_DIR = Path(__file__).resolve().parent.parent.parent / "lua"
NAMES = (
    "hold",
    "release",
    "expire",
    "book",
    "cancel",
    "reschedule",
    "search",
    "schedule",
    "apply_day",
    "put_entity",
    "api_key",
    "app_key",
    "limit",
    "restore",
    "restore_seq",
    "waitlist_join",
    "waitlist_decline",
    "waitlist_leave",
    "tidy",
    "trim",
    "close_gap",
    "lease",
    "restore_waitlist",
    "waitlist_reindex",
    "waitlist_tidy",
    "waitlist_offer_free",
    "waitlist_counters",
)


def _read(name: str) -> str:
    path = LUA_DIR / f"{name}.lua"
    if path.exists():
        return path.read_text()
    return resources.files("lua").joinpath(f"{name}.lua").read_text()  # installed as a package


def source(name: str) -> str:
    """The script as sent to Redis: the engine's limits, the shared prelude, then the script itself."""
    limits_lua = (
        f"local MAX_DURATION_S = {limits.MAX_DURATION_S}  -- engine/limits.py\n"
        f"local OFFERS_PER_INTERVAL = {limits.OFFERS_PER_INTERVAL}  -- engine/limits.py\n"
    )
    return limits_lua + _read("_prelude") + "\n" + _read(name)


# The scripts whose success a client is told with 201/200 and that must survive a failover (invariant 2).
REPLICATED = frozenset(("book", "cancel", "reschedule"))


class Lua:
    """The registered scripts of one Redis client (registered once; EVALSHA with a fallback to EVAL).

    ``replica_wait_ms`` > 0 (a Redis Cluster): a successful book, cancel or reschedule is followed by
    ``WAIT 1 <ms>`` on the connection that ran it (WAIT only counts that connection's own writes), and
    ``ReplicaUnconfirmedError`` is raised when no replica confirmed it in time: the change stands on the primary.
    """

    def __init__(self, redis: Any, replica_wait_ms: int = 0) -> None:
        self.redis = redis
        self.cluster = clients.is_cluster(redis)  # a cluster pipeline refuses EVALSHA: callers check this
        self.replica_wait_ms = replica_wait_ms if self.cluster else 0
        self._scripts = {name: redis.register_script(source(name)) for name in NAMES}

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        script = self._scripts[name]
        if not self.cluster or client is not None:
            return await script(keys=list(keys), args=list(args), client=client)
        return await self._run_on_slot(name, keys, args)

    async def run_batch(self, calls: Sequence[Call]) -> list[Any]:
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
                out[i] = res
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
        wait = self.replica_wait_ms if name in REPLICATED else 0
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

    async def call(self, call: Call, script: str) -> Reply:
        """Run a status-replying script call built for ``script``."""
        if call.script != script:
            raise TypeError(f"a {call.script} call was passed to {script}")
        return reply(await self.run(call.script, call.keys, call.args))


class Ref(NamedTuple):
    """What a script was asked about, so that an error can name it."""

    kind: str = ""
    ident: str = ""
    hold_id: str = ""


class SyncLua:
    """The same scripts for the synchronous callers (persister, retention, lease sharing, the notifier's outbox):
    registered once per client (EVALSHA, redis-py loading a script Redis lost). ``lua(call)`` runs a ``Call``."""

    def __init__(self, redis: Any, names: Sequence[str] = NAMES) -> None:
        self._scripts = {name: redis.register_script(source(name)) for name in names}

    def __call__(self, call: Call) -> Any:
        return self._scripts[call.script](keys=list(call.keys), args=list(call.args))

    def sha(self, name: str) -> str:
        return str(self._scripts[name].sha)

    def text(self, name: str) -> str:
        return str(self._scripts[name].script)


class Call(NamedTuple):
    """One script call: the script, its KEYS and ARGV in its header's order, and what it is about."""

    script: str
    keys: list[str]
    args: list[Any]
    ref: Ref = Ref()


Reply = list[Any]  # [status, *payload] with the status decoded


def reply(raw: Sequence[Any]) -> Reply:
    return [text(raw[0]), *raw[1:]]


def _arg(rest: Reply, i: int = 0) -> str:
    return text(rest[i]) if len(rest) > i else ""


STATUS_ERRORS: dict[str, Callable[[Ref, Reply], errors.BookingError]] = {
    "NOT_FOUND": lambda ref, rest: errors.NotFoundError(ref.kind, ref.ident),
    "HOLD_NOT_FOUND": lambda ref, rest: errors.NotFoundError("hold", ref.hold_id),
    "USED": lambda ref, rest: errors.HoldUsedError(ref.hold_id, _arg(rest) or None),
    "EXPIRED": lambda ref, rest: errors.HoldExpiredError(ref.hold_id, _arg(rest)),
    "UNAVAILABLE": lambda ref, rest: errors.SlotUnavailableError(_arg(rest)),
    "IDEM_MISMATCH": lambda ref, rest: errors.IdempotencyKeyReusedError(),
    "OVERLAP": lambda ref, rest: errors.OverlapDetectedError("a booked appointment already overlaps this hold"),
    "CANCELLED": lambda ref, rest: errors.AppointmentCancelledError(ref.ident),
    "STALE": lambda ref, rest: errors.StaleScheduleError(),
    "KIT": lambda ref, rest: errors.OfferKitError(),
    "NO_OFFER": lambda ref, rest: errors.NoOfferError(ref.ident, _arg(rest)),
    "OFFER_EXPIRED": lambda ref, rest: errors.OfferExpiredError(ref.ident),
    "OFFER": lambda ref, rest: errors.OfferHoldError(ref.hold_id),
}


def fail(res: Reply, ref: Ref) -> NoReturn:
    """Raise the domain error of a status reply (every status not handled by the caller ends here)."""
    make = STATUS_ERRORS.get(res[0])
    if make is None:
        raise AssertionError(f"unexpected script answer {res!r}")
    raise make(ref, res[1:])
