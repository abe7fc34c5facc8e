"""The write-behind persister: reads every practice's event stream through a consumer group, writes each
batch in one transaction, acknowledges only after commit, claims what dead consumers left pending, backs
off while the database is down, trims what every running group has consumed (after a retention window:
persistence/trimming.py) and, once an hour, tidies appointments past their retention (persistence/retention.py).

On a Redis Cluster one XREADGROUP may not name streams of two slots (CROSSSLOT), so each practice's stream is
read by its own non-blocking XREADGROUP, all of them sent in one cluster pipeline: one round trip per node per
tick, pending and new entries alike. A stream is read in order by one command, so order within a practice holds.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from engine import events as ev
from engine import keys, limits
from engine.codec import text
from engine.redis import clients
from engine.redis.errors import RedisError, ResponseError
from engine.scripts import repair
from engine.scripts.registry import SyncLua
from engine.storm import Storm
from persistence import quarantine, shards, trimming, writer
from persistence.audit_rows import audit_id
from persistence.retention import AppointmentTidy
from persistence.streams import StreamConsumer
from persistence.waitlist_tidy import WaitlistTidy

log = logging.getLogger("booking.persister")

# Global hash: audit id -> why the persister holds that event back for good (an operator must look); shown by
# /readyz and /metrics, emptied of an entry once it is acknowledged.
HELD = keys.PERSIST_HELD


class Persister(StreamConsumer):
    group = keys.PERSIST_GROUP

    def __init__(
        self,
        redis: Any,
        db: Engine,
        *,
        retention_ms: int = 3_600_000,
        group_idle_s: int = limits.DEFAULT_STREAM_GROUP_IDLE_S,
        tidy: AppointmentTidy | None = None,
        waitlist_tidy: WaitlistTidy | None = None,
        on_lost: Callable[[set[str]], set[str]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(redis, **kw)
        # With ``on_lost`` (`booking persister`): every 5 s the practices of this share whose data Redis lost are
        # named in bk:v1:lost and handed to it (reconciliation of those practices only); it returns those done.
        self.on_lost = on_lost
        self.lost_seen: dict[str, str] = {}  # practices whose audit seq had gone back (found while writing)
        self.db = db
        self.retention_ms = retention_ms
        self.group_idle_s = group_idle_s
        self.tidy = tidy  # appointments past their retention leave Redis (persistence/retention.py)
        self.waitlist_tidy = waitlist_tidy  # ended waitlist entries leave Redis (persistence/waitlist_tidy.py)
        self.lua = SyncLua(redis, ("trim", "restore_seq"))
        self._last_maintenance = 0.0
        self.applied = 0
        self.stored: Counter[str] = Counter()  # practice id -> events this persister stored and acknowledged
        self.backoff = 0.0
        self.db_storm = Storm("persister", log)  # one line per outage, not per retry (engine/storm.py)
        self.redis_storm = Storm("persister", log)
        self.gather_s = 0.1
        self.held: set[str] = set()  # audit ids this persister published in HELD
        self.quarantined = 0  # events this persister set aside (persistence/quarantine.py)
        self._last_publish = 0.0

    # ---------------------------------------------------------------- one step
    def _write(self, entries: list[tuple[str, str, dict[Any, Any]]]) -> int:
        """Write the entries in one transaction, then acknowledge what is durable."""
        entries = self.mine(entries)
        if not entries:
            return 0
        fields = {(key, entry_id): f for key, entry_id, f in entries}
        decoded = self.decode(entries)
        events = [e for _, e in decoded]
        raw = {audit_id(e): quarantine.raw_fields(fields[(key, e.event_id)]) for key, e in decoded}
        try:
            with self.db.begin() as conn:
                done = writer.apply(conn, events, predecessor=self.predecessor, raw=raw)
        except quarantine.POISON as exc:
            # the database refused something of this batch (not a connection error): again with a savepoint per
            # event, where what it refuses is set aside; then, if even that fails, one transaction per event
            log.warning("a batch was refused (%s); applying it again event by event", quarantine.reason(exc))
            try:
                with self.db.begin() as conn:
                    done = writer.apply(conn, events, careful=True, predecessor=self.predecessor, raw=raw)
            except quarantine.POISON:
                done = self._one_by_one(events, raw)
        if done.quarantined:
            self.quarantined += len(done.quarantined)
            self._publish_quarantine()
        stored = [(key, e) for key, e in decoded if audit_id(e) in done]
        n = self.ack([(key, e.event_id) for key, e in stored])
        self.applied += n
        self.stored.update(e.practice_id for _, e in stored)
        self._after(done)
        return n

    def _one_by_one(self, events: list[ev.Event], raw: dict[str, str]) -> writer.Applied:
        """Each event in a transaction of its own; one the database refuses even alone (its audit row included) is
        set aside whole, and the chain goes on after it (a ``seq_gap`` row)."""
        done = writer.Applied()
        for e in events:
            try:
                with self.db.begin() as conn:
                    done.merge(writer.apply(conn, [e], careful=True, predecessor=self.predecessor, raw=raw))
            except quarantine.POISON as exc:
                ident, why = audit_id(e), quarantine.reason(exc)
                log.error("event %s (%s) refused even alone, set aside whole: %s", ident, e.__struct_config__.tag, why)
                with self.db.begin() as conn:
                    quarantine.set_aside(conn, [quarantine.event_row(e, raw.get(ident), why, audited=False)])
                done.quarantined[ident] = why
                done.add(ident)
        return done

    def decode(self, entries: list[tuple[str, str, dict[Any, Any]]]) -> list[tuple[str, ev.Event]]:
        """An entry that cannot be decoded is set aside raw in the quarantine (then acknowledged), not lost."""
        decoded: list[tuple[str, ev.Event]] = []
        for key, entry_id, fields in entries:
            try:
                decoded.append((key, ev.from_stream(entry_id, fields)))
            except Exception as exc:  # noqa: BLE001 - an undecodable entry must not block the stream
                practice_id = (self.streams.get(key) or key)[:32]
                why = quarantine.clean(f"undecodable: {type(exc).__name__}: {exc}")
                log.error("undecodable event %s %s: %s (set aside in the quarantine)", key, entry_id, why)
                with self.db.begin() as conn:
                    quarantine.set_aside(
                        conn,
                        [
                            quarantine.row(
                                practice_id,
                                entry_id,
                                "undecodable",
                                quarantine.raw_fields(fields),
                                why,
                                entity=None,
                                audited=False,
                            )
                        ],
                    )
                self.redis.xack(key, self.group, entry_id)
                self.quarantined += 1
                self._publish_quarantine()
        return decoded

    def _publish_quarantine(self, every_s: float = 0.0) -> None:
        """Name the open quarantine in Redis for /readyz (rebuilt from the database: replays clear it)."""
        if self.clock() - self._last_publish >= every_s:
            self._last_publish = self.clock()
            quarantine.publish(self.redis, self.db)

    def refresh_quarantine(self) -> None:
        """Upkeep: at most once a minute, the Redis copy of the quarantine rebuilt (a replay elsewhere clears it)."""
        self._publish_quarantine(60.0)

    def _after(self, done: writer.Applied) -> None:
        """Raise Redis's audit counters that went back below what is stored; publish what is held back."""
        for practice_id, last_seq in sorted(done.raise_seq.items()):
            call = repair.restore_seq_call(practice_id=practice_id, last_seq=last_seq)
            had = repair.restore_seq_reply(self.lua(call))
            if had is not None:
                self.lost_seen[practice_id] = f"audit seq {had} below the {last_seq} stored (Redis lost writes)"
                log.warning(
                    "practice %s: Redis's audit seq was %d, below the %d already stored (Redis lost data): raised",
                    practice_id,
                    had,
                    last_seq,
                )
        if done.held:
            self.redis.hset(HELD, mapping={k: f"{int(self.clock() * 1000)} {why}" for k, why in done.held.items()})
            self.held.update(done.held)
        cleared = self.held & done
        if cleared:
            self.redis.hdel(HELD, *cleared)
            self.held -= cleared

    def predecessor(self, e: ev.Event) -> str | None:
        """The entry id of the audited event before ``e`` in its practice's stream; None when none is left
        (entries are trimmed only once every group acknowledged them). Undecodable entries (acknowledged and
        skipped) do not count."""
        key, upper = keys.events(e.practice_id), f"({e.event_id}"
        while True:
            got = self.redis.xrevrange(key, max=upper, min="-", count=20)
            if not got:
                return None
            for entry_id, fields in got:
                try:
                    if ev.from_stream(entry_id, fields).__struct_config__.tag in ev.AUDITED:
                        return text(entry_id)
                except Exception:  # noqa: BLE001 - the persister skipped it too
                    continue
            upper = f"({text(got[-1][0])}"

    def _read(self, start: str, block: int | None) -> list[tuple[str, str, dict[Any, Any]]]:
        return self.read(start, block)

    def step(self, block: bool = True) -> int:
        """Own pending entries first (retries), then new ones. Returns the number acknowledged."""
        try:
            return self._step(block)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("a stream or its group vanished (Redis lost its data?); re-creating the groups")
            self.streams.clear()
            self.refresh_streams(force=True)
            return 0

    def _step(self, block: bool) -> int:
        self.refresh_streams()
        if self.cluster:  # no blocking reads on a cluster: run() paces the ticks
            pending, new = self.fetch(None)
            return self._write(pending) + self._write(new) + self._maintain()
        n = self._write(self._read("0", None))
        n += self._write(self._read(">", self.block_ms if block and self.block_ms else None))
        return n + self._maintain()

    def _maintain(self) -> int:
        if self.clock() - self._last_maintenance > 5:
            self._last_maintenance = self.clock()
            jobs = [self.claim_abandoned, self.trim, self.check_lost, self.refresh_quarantine]
            if self.tidy is not None:
                jobs.insert(2, self.tidy.maybe_run)
            if self.waitlist_tidy is not None:
                jobs.insert(2, self.waitlist_tidy.maybe_run)
            for job in jobs:
                try:
                    job()
                except clients.UNREACHABLE as exc:
                    if not self.cluster:
                        raise
                    # a shard is down: its practices wait, the writes of the others go on (next round in 5 s)
                    log.warning("persister upkeep %s skipped this round: %s", job.__name__, exc)
        return 0

    def check_lost(self) -> dict[str, str]:
        """Practices of this persister's share that lost their data (persistence/shards.py): named in bk:v1:lost,
        then reconciled by ``on_lost`` (under their leases: nobody else reads them meanwhile)."""
        if self.on_lost is None:
            return {}
        if shards.relist_practices(self.redis, self.db):
            log.warning("bk:v1:practices had lost practices (its shard lost its data): listed again")
            self.refresh_streams(force=True)
        only = None if self.share is None else set(self.share.held)
        lost = {**shards.lost_practices(self.redis, self.db, only), **self.lost_seen}
        self.lost_seen = {}
        if lost:
            log.warning("Redis lost the data of %d practice(s): %s; reconciling them", len(lost), lost)
            shards.publish_lost(self.redis, lost, int(self.clock() * 1000))
            ordered = sorted(lost)
            for i in range(0, len(ordered), 20):  # a few at a time, heartbeating between them: the leases hold
                self.refresh_streams()
                shards.forget_lost(self.redis, self.on_lost(set(ordered[i : i + 20])))
        return lost

    def drain(self, min_idle_ms: int = 0) -> int:
        """Until nothing is left: used at start-up (reconciliation) and by `booking reconcile`."""
        self.refresh_streams(force=True)
        self.claim_abandoned(min_idle_ms)
        total = 0
        for _ in range(100_000):
            n = self.step(block=False)
            total += n
            if n == 0:
                break
        self.stop_sharing()
        return total

    # ---------------------------------------------------------------- trimming
    def trim(self) -> int:
        """Drop entries older than the retention window that every running group has acknowledged (the
        persisters' group always counts; persistence/trimming.py)."""
        horizon, idle_ms = int(self.clock() * 1000) - self.retention_ms, self.group_idle_s * 1000
        return sum(trimming.trim_stream(self.redis, self.lua, k, p, horizon, idle_ms) for k, p in self.streams.items())

    # ---------------------------------------------------------------- loop
    def run(self, stop: threading.Event) -> None:
        log.info("persister %s started", self.consumer)
        while not stop.is_set():
            try:
                n = self.step()
                if n == 0 and (not self.block_ms or self.cluster or not self.streams):
                    stop.wait(0.05)  # polling mode (embedded store, Redis Cluster: no blocking reads)
                elif n < self.batch:
                    # a small batch: let more events gather before the next transaction. One transaction per
                    # handful of events cost most of a core at a few hundred events/s; this bounds the added lag
                    stop.wait(self.gather_s)
                self.backoff = 0.0
                self.db_storm.ok()
                self.redis_storm.ok()
            except DBAPIError as exc:
                self.backoff = min(5.0, max(0.2, self.backoff * 2))
                if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
                    self.db_storm.failed(f"database unavailable ({exc.__class__.__name__})")
                else:  # not the connection, and not one event (those are set aside): a bug or a schema problem
                    log.error("database error %s; retrying in %.1fs", quarantine.reason(exc), self.backoff)
                stop.wait(self.backoff)
            except RedisError as exc:
                self.backoff = min(5.0, max(0.2, self.backoff * 2))
                self.redis_storm.failed(f"redis unavailable ({exc or type(exc).__name__})")
                stop.wait(self.backoff)
            except Exception:  # a bug in one batch must not stop the persister for good
                self.backoff = min(5.0, max(0.2, self.backoff * 2))
                log.exception("persister step failed; retrying in %.1fs", self.backoff)
                stop.wait(self.backoff)
        try:
            self.stop_sharing()
        except RedisError as exc:  # the leases run out on their own
            log.warning("could not give back the leases (%s)", exc)
        log.info("persister %s stopped after %d events", self.consumer, self.applied)
