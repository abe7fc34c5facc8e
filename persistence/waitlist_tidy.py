"""The waitlist tidy: entries that ended (booked, left, or their window passed) leave Redis once the database
holds their current version, so ``T:wl:entries`` holds the live entries and the recently ended ones only
(issue 22). Afterwards the API reads such an entry from the database (persistence/archive.py).

Once per ``INTERVAL_S`` (one process at a time: ``keys.WAITLIST_TIDY_LOCK``) the persister reads each practice's
entries (HSCAN), keeps those that ended more than ``GRACE_S`` ago, reads the versions the database holds for them
and runs ``waitlist_tidy.lua`` for each: the script removes the entry only if Redis still holds exactly that
version and it is still ended (never a live entry, never a change the persister has not stored yet)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine import keys
from engine.codec import text
from engine.model import WaitlistRecord
from engine.scripts.registry import SyncLua
from engine.scripts.waitlist import waitlist_tidy_call
from persistence.tables import waitlist_entries

log = logging.getLogger("booking.retention")
INTERVAL_S = 600.0
GRACE_S = 3600  # an ended entry stays in Redis this long after its last change (or its window's end)
_decoder = msgspec.json.Decoder(WaitlistRecord)


class WaitlistTidyReport(msgspec.Struct):
    removed: int = 0
    unstored: int = 0  # ended, but the database lacks it or holds another version: kept
    seen: int = 0


def ended_since_ms(rec: WaitlistRecord) -> int | None:
    """When the entry ended (its last change when booked or left, its window's end when waiting), or None: live."""
    if rec.status in ("booked", "left"):
        return rec.updated_ms
    if rec.status == "waiting":
        return max(rec.updated_ms, rec.spans[-1][1] * 1000)
    return None  # offered: its offer lapses first (the entry waits again)


class WaitlistTidy:
    def __init__(self, redis: Any, db: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.redis, self.db, self.clock = redis, db, clock
        self.lua = SyncLua(redis, ("waitlist_tidy",))
        self._last = 0.0

    def maybe_run(self) -> WaitlistTidyReport | None:
        """Once per INTERVAL_S, and only in one process at a time (the lock outlives the pass)."""
        if self.clock() - self._last < INTERVAL_S:
            return None
        self._last = self.clock()
        if not self.redis.set(keys.WAITLIST_TIDY_LOCK, "1", nx=True, ex=int(INTERVAL_S) - 60):
            return None
        report = self.run()
        if report.removed or report.unstored:
            log.info("waitlist tidy: %d ended entries left Redis; %d kept (not yet stored)", report.removed,
                     report.unstored)  # fmt: skip
        return report

    def run(self, now_s: float | None = None) -> WaitlistTidyReport:
        now_ms = int((self.clock() if now_s is None else now_s) * 1000)
        report = WaitlistTidyReport()
        for raw_pid in self.redis.smembers(keys.PRACTICES):
            pid = text(raw_pid)
            old: dict[str, int] = {}  # entry id -> the version Redis holds
            for entry_id, raw in self.redis.hscan_iter(keys.waitlist_entries(pid), count=500):
                report.seen += 1
                rec = _decoder.decode(raw)
                since = ended_since_ms(rec)
                if since is not None and since + GRACE_S * 1000 <= now_ms:
                    old[text(entry_id)] = rec.version
            if old:
                self._tidy(pid, old, now_ms, report)
        return report

    def _tidy(self, pid: str, old: dict[str, int], now_ms: int, report: WaitlistTidyReport) -> None:
        ids = list(old)
        stored: dict[str, int] = {}
        for at in range(0, len(ids), 500):
            with self.db.connect() as c:
                q = select(waitlist_entries.c.id, waitlist_entries.c.version).where(
                    waitlist_entries.c.id.in_(ids[at : at + 500])
                )
                stored.update({r.id: int(r.version) for r in c.execute(q)})
        for entry_id in ids:
            if stored.get(entry_id) != old[entry_id]:
                report.unstored += 1
                continue
            call = waitlist_tidy_call(
                practice_id=pid, entry_id=entry_id, stored_version=stored[entry_id], now_ms=now_ms
            )
            res = self.lua(call)
            if text(res[0]) == "OK":
                report.removed += 1
            elif text(res[1]) == "unstored":
                report.unstored += 1
