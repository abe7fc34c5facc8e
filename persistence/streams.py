"""Reading the per-practice event streams through a consumer group (shared by the persister and the notifier's
outbox), and how far a group is behind.

On a Redis Cluster one XREADGROUP may not name streams of two slots (CROSSSLOT), so each practice's stream is
read by its own non-blocking XREADGROUP, sent node by node (engine/redis/pernode.py): one round trip per node per
tick, pending and new entries alike, and a node that is down holds back only its own practices. A stream is read in order by one command, so order within a practice holds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from engine import events as ev
from engine import keys
from engine.codec import text
from engine.redis import clients, pernode
from engine.redis.errors import ResponseError
from persistence.shares import LEASE_MS, Share

log = logging.getLogger("booking.persister")


def _id_ms(entry_id: str) -> int:
    return int(entry_id.split("-")[0])


class StreamConsumer:
    """Reads every practice's event stream through one consumer group (see keys.GROUPS)."""

    group = keys.PERSIST_GROUP

    def __init__(
        self,
        redis: Any,
        *,
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        clock: Callable[[], float] = time.time,
        sharing: str = "all",
        lease_ms: int = LEASE_MS,
    ) -> None:
        self.redis = redis
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 10000}"
        self.batch, self.block_ms, self.claim_idle_ms = batch, block_ms, claim_idle_ms
        self.clock = clock
        self.cluster = clients.is_cluster(redis)
        self.streams: dict[str, str] = {}  # stream key -> practice id: the streams this consumer reads
        self._known: dict[str, str] = {}  # every practice's stream whose groups exist
        self._last_refresh = 0.0
        # "all": every stream (one persister, tests); "members": this persister's share among the live ones;
        # "free": every stream no other persister holds (a drain). persistence/shares.py
        self.share = None if sharing == "all" else Share(redis, self.consumer, lease_ms=lease_ms,
                                                         everyone=sharing == "free", clock=clock)  # fmt: skip
        if self.share is not None and block_ms:
            self.block_ms = max(1, min(block_ms, lease_ms // 6))  # a blocked read must not outlast a renewal

    def refresh_streams(self, force: bool = False) -> None:
        """The streams to read: every practice's (bk:v1:practices), or this consumer's share of them. On a cluster a
        shard that cannot be reached holds back only its practices: the list of practices is the last one read
        when its own shard is the one down, a stream whose group cannot be made is tried again at the next
        refresh, and a practice whose abandoned entries cannot be claimed yet is not read (order first)."""
        if not force and self.clock() - self._last_refresh < 2 and not (self.share and self.share.due()):
            return
        self._last_refresh = self.clock()
        if force:
            self._known.clear()  # re-check every group: Redis may have lost its data since
        try:
            listed = [text(raw) for raw in self.redis.smembers(keys.PRACTICES)]
        except clients.UNREACHABLE as exc:
            if not self._known or not self.cluster:
                raise
            log.warning("the list of practices is unreachable (%s): reading the %d known", exc, len(self._known))
            listed = list(self._known.values())
        for pid in listed:
            key = keys.events(pid)
            if key in self._known:
                continue
            try:
                for group in keys.GROUPS:
                    try:
                        self.redis.xgroup_create(key, group, id="0", mkstream=True)
                    except ResponseError as exc:
                        if "BUSYGROUP" not in str(exc):
                            raise
            except clients.UNREACHABLE as exc:
                if not self.cluster:
                    raise
                log.warning("the stream of practice %s is unreachable (%s): tried again later", pid, exc)
                continue
            self._known[key] = pid
        if self.share is None:
            self.streams = dict(self._known)
            return
        taken = self.share.update(self._known.values())
        self.streams = {k: p for k, p in self._known.items() if p in self.share.held}
        if taken:  # what the previous holder read and never acknowledged comes first, in stream order
            self.claim_abandoned(0, [keys.events(p) for p in sorted(taken)])

    def mine(self, entries: list[tuple[str, str, dict[Any, Any]]]) -> list[tuple[str, str, dict[Any, Any]]]:
        """The entries of practices whose lease this consumer still holds by its own clock (all without sharing).
        The others stay pending: the lease's next holder claims them."""
        if self.share is None:
            return entries
        kept = [e for e in entries if self.share.valid(self.streams.get(e[0], ""))]
        if len(kept) < len(entries):
            log.warning("%d entries not written: their practices' leases ran out meanwhile", len(entries) - len(kept))
        return kept

    def stop_sharing(self) -> None:
        """Give back every lease and leave the members (a clean stop)."""
        if self.share is not None:
            self.share.release()
            self.streams = {}

    def read(self, start: str, block: int | None) -> list[tuple[str, str, dict[Any, Any]]]:
        """(stream key, entry id, fields) of own pending entries (start '0') or new ones (start '>')."""
        if not self.streams:
            return []
        if self.cluster:
            return self.read_per_stream((start,))[0]
        resp = self.redis.xreadgroup(
            self.group, self.consumer, {k: start for k in self.streams}, count=self.batch, block=block
        )
        return self._entries(resp)

    def _entries(self, resp: Any) -> list[tuple[str, str, dict[Any, Any]]]:
        out = []
        for key, entries in resp or []:
            for entry_id, fields in entries:
                if fields:  # a pending entry trimmed meanwhile comes back empty
                    out.append((text(key), text(entry_id), fields))
                else:
                    self.redis.xack(text(key), self.group, entry_id)
        return out

    def read_per_stream(self, starts: tuple[str, ...]) -> list[list[tuple[str, str, dict[Any, Any]]]]:
        """Redis Cluster: one non-blocking XREADGROUP per stream and start, sent node by node (engine/redis/pernode.py:
        one round trip per node; a node that is down holds back only its streams, read again at the next tick).
        Each command goes to its slot's node, so the client does not ask the server for the keys of each
        XREADGROUP (COMMAND GETKEYS); a redirected one is sent again through the client, which follows it."""
        if not self.streams:
            return [[] for _ in starts]
        commands = [
            (key, ("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", self.batch, "STREAMS", key, start))
            for start in starts
            for key in self.streams
        ]
        answers = [None if isinstance(a, BaseException) else a for a in pernode.run(self.redis, commands)]
        n = len(self.streams)
        return [self._entries([r for a in answers[i * n : (i + 1) * n] for r in a or []]) for i in range(len(starts))]

    def fetch(self, block: int | None) -> tuple[list[tuple[str, str, dict[Any, Any]]], ...]:
        """Own pending entries (retries), then new ones: on a cluster both in the same round trip per node."""
        if self.cluster:
            pending, new = self.read_per_stream(("0", ">"))
            return pending, new
        return self.read("0", None), self.read(">", block)

    def decode(self, entries: list[tuple[str, str, dict[Any, Any]]]) -> list[tuple[str, ev.Event]]:
        decoded: list[tuple[str, ev.Event]] = []
        for key, entry_id, fields in entries:
            try:
                decoded.append((key, ev.from_stream(entry_id, fields)))
            except Exception as exc:  # noqa: BLE001 - an undecodable entry must not block the stream
                log.error("undecodable event %s %s: %s (acknowledged, skipped)", key, entry_id, exc)
                self.redis.xack(key, self.group, entry_id)
        return decoded

    def ack(self, done: list[tuple[str, str]]) -> int:
        """Acknowledge what was stored. An acknowledgement a node did not take (it is down) leaves its entries
        pending: read and stored again later, where the database keeps each event once."""
        by_key: dict[str, list[str]] = {}
        for key, event_id in done:
            by_key.setdefault(key, []).append(event_id)
        answers = pernode.run(self.redis, [(key, ("XACK", key, self.group, *ids_)) for key, ids_ in by_key.items()])
        failed = [a for a in answers if isinstance(a, BaseException)]
        if failed and not self.cluster:
            raise failed[0]
        return len(done)

    def claim_abandoned(self, min_idle_ms: int | None = None, streams: list[str] | None = None) -> int:
        """Take over entries another consumer read but never acknowledged (it died). On a cluster a stream whose
        node cannot be reached is left out of this consumer's streams until a claim succeeds (nothing newer of
        that practice is read before its abandoned entries)."""
        claimed = 0
        for key in list(self.streams) if streams is None else streams:
            try:
                claimed += self._claim(key, self.claim_idle_ms if min_idle_ms is None else min_idle_ms)
            except clients.UNREACHABLE as exc:
                if not self.cluster:
                    raise
                log.warning("claiming the abandoned entries of %s failed (%s): not read until it succeeds", key, exc)
                pid = self.streams.pop(key, None)
                if pid is not None and self.share is not None:
                    self.share.held.pop(pid, None)  # taken again at the next refresh, and claimed then
        return claimed

    def _claim(self, key: str, min_idle_ms: int) -> int:
        claimed, start = 0, "0-0"
        while True:
            res = self.redis.xautoclaim(key, self.group, self.consumer, min_idle_ms, start_id=start, count=self.batch)
            start, got = text(res[0]), res[1]
            claimed += len(got)
            if start == "0-0" or not got:
                return claimed


def stream_lag(redis: Any, key: str, group: str, now_ms: int) -> tuple[int, int] | None:
    """(entries of one stream not yet acknowledged by ``group``, time in ms of the oldest of them, ``now_ms``
    if none); None if the stream does not exist. Before its group exists (no consumer has read yet) every
    entry is waiting."""
    try:
        groups = {text(g.get("name")): g for g in redis.xinfo_groups(key)}
    except ResponseError:
        return None
    g = groups.get(group)
    if g is None:
        first = redis.xrange(key, min="-", max="+", count=1)
        return int(redis.xlen(key)), _id_ms(text(first[0][0])) if first else now_ms
    oldest = now_ms
    pending = int(g.get("pending") or 0)
    last = text(g.get("last-delivered-id") or "0-0")
    undelivered = redis.xrange(key, min=f"({last}" if last != "0-0" else "-", max="+", count=1)
    backlog = g.get("lag")  # a promoted replica's group may report a stale lag (seen after a kill -9 on a cluster)
    if not undelivered:
        backlog_n = 0
    else:
        backlog_n = int(backlog) if backlog is not None else len(redis.xrange(key, min=f"({last}", max="+"))
    first_pending = redis.xpending(key, group)["min"] if pending else None
    if first_pending is not None:
        oldest = min(oldest, _id_ms(text(first_pending)))
    if undelivered:
        oldest = min(oldest, _id_ms(text(undelivered[0][0])))
    return pending + backlog_n, oldest


def lag(redis: Any, group: str = keys.PERSIST_GROUP, now_ms: int | None = None) -> tuple[int, float]:
    """(events not yet acknowledged by ``group``, age in seconds of the oldest of them) over all streams."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    events_behind, oldest = 0, now_ms
    for raw in redis.smembers(keys.PRACTICES):
        one = stream_lag(redis, keys.events(text(raw)), group, now_ms)
        if one is not None:
            events_behind += one[0]
            oldest = min(oldest, one[1])
    return events_behind, max(0.0, (now_ms - oldest) / 1000)
