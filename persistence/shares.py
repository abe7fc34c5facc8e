"""Several persisters split the practices among themselves (docs/operations.md, "Persisters share the practices").

* **Members.** Each persister heartbeats every ``lease_ms / 3``: ``SET bk:v1:{persisters}:alive:<id> 1 PX
  lease_ms`` and ``SADD bk:v1:{persisters}:members <id>``. A member whose key ran out (Redis's clock, not the
  hosts') is dead and is taken off the set by the next member that sees it.
* **Assignment.** Rendezvous hashing over the live members: a practice belongs to the member with the highest
  ``blake2b(member, practice)``. Deterministic, even, and a change of members moves only the practices of the
  member that left (or the share of the one that joined).
* **Leases.** A persister reads a practice's stream only while it holds the practice's lease
  (``T:persist-lease``, ``lease.lua``: taken only when free or its own, ``PX lease_ms``), renewed with each
  heartbeat, given back at once when the practice moved to another member, and checked against the local
  clock before each batch is written (a persister paused past its lease writes nothing). So one practice is
  never read by two persisters at once, whatever each one's view of the members is.
* **Takeover.** A persister killed with ``kill -9`` stops renewing: its member key and leases run out within
  ``lease_ms`` of its last heartbeat, the survivors see it gone at their next heartbeat and take its leases,
  then claim (``XAUTOCLAIM``) the entries it read and never acknowledged before reading anything new of that
  practice: bounded by ``lease_ms * 4 / 3`` plus one tick.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from engine import keys
from engine.codec import text
from engine.redis import clients, pernode
from engine.redis.errors import NoScriptError
from engine.scripts import lease_call
from engine.scripts.registry import SyncLua

log = logging.getLogger("booking.persister")

LEASE_MS = 6_000  # default lease and member TTL: takeover after a crash within about 8 s


def owner_of(practice_id: str, members: Iterable[str]) -> str | None:
    """The member a practice belongs to: highest rendezvous weight (None when there is no member)."""

    def weight(member: str) -> bytes:
        return hashlib.blake2b(f"{member}\0{practice_id}".encode(), digest_size=8).digest()

    return max(members, key=weight, default=None)


class Membership:
    """This persister's heartbeat, and the live members."""

    def __init__(self, redis: Any, member: str, lease_ms: int) -> None:
        self.redis, self.member, self.lease_ms = redis, member, lease_ms

    def beat(self) -> list[str]:
        """Renew this member; returns the live members (this one included), sorted."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.persist_member(self.member), "1", px=self.lease_ms)
            pipe.sadd(keys.PERSIST_MEMBERS, self.member)
            pipe.smembers(keys.PERSIST_MEMBERS)
            *_, raw = pipe.execute()
        others = sorted(text(m) for m in raw if text(m) != self.member)
        with self.redis.pipeline(transaction=False) as pipe:
            for m in others:
                pipe.exists(keys.persist_member(m))
            alive = pipe.execute() if others else []
        dead = [m for m, ok in zip(others, alive, strict=True) if not ok]
        if dead:
            log.warning("persister(s) %s stopped heartbeating: their practices are taken over", ", ".join(dead))
            self.redis.srem(keys.PERSIST_MEMBERS, *dead)
        return sorted([self.member, *(m for m, ok in zip(others, alive, strict=True) if ok)])

    def leave(self) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(keys.persist_member(self.member))
            pipe.srem(keys.PERSIST_MEMBERS, self.member)
            pipe.execute()


class Share:
    """The practices one persister may read now: those whose lease it holds.

    ``everyone=False`` (a running `booking persister`): its rendezvous share of the practices among the live
    members. ``everyone=True`` (a drain: start-up reconciliation): every practice whose lease is free; a
    practice another persister holds is left to it."""

    def __init__(
        self,
        redis: Any,
        name: str,
        *,
        lease_ms: int = LEASE_MS,
        everyone: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis, self.lease_ms, self.clock = redis, lease_ms, clock
        self.owner = f"{name}/{uuid.uuid4().hex[:8]}"  # unique per instance, even for a reused consumer name
        self.membership = None if everyone else Membership(redis, self.owner, lease_ms)
        self.members: list[str] = [self.owner]
        self.held: dict[str, float] = {}  # practice id -> local deadline of its lease (s)
        self.lua = SyncLua(redis, ("lease",))
        self._cluster = clients.is_cluster(redis)
        self._last = 0.0

    def due(self) -> bool:
        return self.clock() - self._last >= self.lease_ms / 3000

    def valid(self, practice_id: str) -> bool:
        """Whether the lease is still this persister's by its own clock (checked before each write)."""
        return self.held.get(practice_id, 0.0) > self.clock()

    def update(self, practices: Iterable[str]) -> set[str]:
        """Heartbeat, take or renew the leases of this persister's share, give back the others. Returns the
        practices whose lease was just taken (their abandoned entries are to be claimed before anything new)."""
        self._last = started = self.clock()
        practices = set(practices)
        if self.membership is not None:
            try:
                self.members = self.membership.beat()
            except clients.UNREACHABLE as exc:
                if not self._cluster:
                    raise
                # the members' shard is down: keep the last view (the leases still keep each practice to one)
                log.warning("persister heartbeat failed (%s): sharing by the last %d members", exc, len(self.members))
            want = {p for p in practices if owner_of(p, self.members) == self.owner}
        else:
            want = practices
        give_back = sorted(set(self.held) - want)
        take = sorted(want)
        answers = self._run([(p, self.lease_ms) for p in take] + [(p, 0) for p in give_back])
        deadline = started + self.lease_ms / 1000 * 0.8  # a margin for the round trip and clock drift
        before = set(self.held)
        self.held = {p: deadline for p, ok in zip(take, answers, strict=False) if ok}
        if give_back:
            log.info("persister %s gave back %d practice(s) to other members", self.owner, len(give_back))
        return set(self.held) - before

    def release(self) -> None:
        """Give back every lease (a clean stop: the others take over at their next heartbeat)."""
        self._run([(p, 0) for p in sorted(self.held)])
        self.held = {}
        if self.membership is not None:
            self.membership.leave()

    def _run(self, calls: list[tuple[str, int]]) -> list[bool]:
        """lease.lua for every (practice, ttl), node by node (engine/redis/pernode.py: one round trip per node). A
        practice whose node cannot be reached is not held (on a cluster; on a single Redis the error is raised).
        A cluster pipeline refuses the evalsha() method, not the raw command aimed at the slot's node."""
        if not calls:
            return []
        commands = []
        for practice_id, ttl in calls:
            c = lease_call(practice_id=practice_id, owner=self.owner, ttl_ms=ttl)
            commands.append((c.keys[0], ("EVALSHA", self.lua.sha("lease"), 1, *c.keys, *c.args)))
        for _ in range(3):
            answers = pernode.run(self.redis, commands)
            if not any(isinstance(a, NoScriptError) for a in answers):
                out = []
                for a in answers:
                    if isinstance(a, clients.UNREACHABLE) and self._cluster:
                        out.append(False)  # its shard is down: not held this round
                    elif isinstance(a, BaseException):
                        raise a
                    else:
                        out.append(int(a) == 1)
                return out
            # a restarted or promoted node: load it there (not on every primary: another may be down), send again
            missing = [cmd for cmd, a in zip(commands, answers, strict=True) if isinstance(a, NoScriptError)]
            pernode.run(self.redis, [(key, ("SCRIPT", "LOAD", self.lua.text("lease"))) for key, _ in missing])
        raise RuntimeError("lease.lua could not be loaded")
