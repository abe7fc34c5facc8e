"""The appointment tidy: appointments that ended more than ``APPOINTMENT_RETENTION_DAYS`` ago leave Redis.

Once an hour (one process at a time: ``keys.TIDY_LOCK``) the persister walks the appointment hashes (one SCAN over
the keyspace, every primary on a cluster: not a hot path), keeps those that ended before the cut, reads the
version and status the database holds for them, and runs ``tidy.lua`` for each: the script removes the hash only
if it still ended before the cut and Redis holds exactly what the database holds. An appointment the database
lacks, or holds in an older version (a change the persister has not stored yet), stays. Afterwards the API reads
it from the database (persistence/archive.py). Its claim went already with the horizon roll (the script removes
it too, should it still be there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine import ids, keys
from engine.codec import text
from engine.scripts import retention as scripts
from engine.scripts.registry import SyncLua
from persistence.tables import appointments

log = logging.getLogger("booking.retention")
INTERVAL_S = 3600.0
BATCH = 500
STEP_S = 0.25  # at most this long per maintenance tick: the persister's heartbeats and batches go on between


class TidyReport(msgspec.Struct):
    removed: int = 0
    unstored: int = 0  # ended before the cut, but the database lacks it or holds an older version: kept
    seen: int = 0


def _batches(it: Iterator[Any], n: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for raw in it:
        batch.append(text(raw))
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


class AppointmentTidy:
    def __init__(self, redis: Any, db: Engine, retention_days: int, *, clock: Callable[[], float] = time.time) -> None:
        self.redis, self.db, self.retention_days, self.clock = redis, db, retention_days, clock
        self.lua = SyncLua(redis, ("tidy",))
        self._last = 0.0
        self._pass: tuple[Iterator[list[str]], int, TidyReport] | None = None  # a pass under way: batches, cut

    def maybe_run(self, monotonic: Callable[[], float] = time.monotonic) -> TidyReport | None:
        """Once per INTERVAL_S, and only in one process at a time, a pass over the appointment hashes, made a
        few batches at a time (at most STEP_S per call) so the persister's loop never stalls on a large keyspace.
        Returns the pass's report when it ends, else None."""
        if not self.retention_days:
            return None
        if self._pass is None:
            if self.clock() - self._last < INTERVAL_S:
                return None
            self._last = self.clock()
            if not self.redis.set(keys.TIDY_LOCK, "1", nx=True, ex=int(INTERVAL_S) - 60):
                return None
            cut_s = int(self.clock()) - self.retention_days * 86400
            scan = self.redis.scan_iter(match=keys.appointment_pattern(), count=1000)
            self._pass = (_batches(scan, BATCH), cut_s, TidyReport())
        batches, cut_s, report = self._pass
        until = monotonic() + STEP_S
        for batch in batches:
            self._tidy_batch(batch, cut_s, report)
            if monotonic() >= until:
                return None
        self._pass = None
        if report.removed or report.unstored:
            log.info(
                "tidy: %d appointment(s) that ended more than %d days ago left Redis; %d kept (not yet stored)",
                report.removed, self.retention_days, report.unstored,
            )  # fmt: skip
        return report

    def run(self, now_s: float | None = None) -> TidyReport:
        cut_s = int(self.clock() if now_s is None else now_s) - self.retention_days * 86400
        report = TidyReport()
        for batch in _batches(self.redis.scan_iter(match=keys.appointment_pattern(), count=1000), BATCH):
            self._tidy_batch(batch, cut_s, report)
        return report

    def _tidy_batch(self, batch: list[str], cut_s: int, report: TidyReport) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key in batch:
            pipe.hmget(key, "end", "practitioner_id")
        old: dict[str, tuple[str, str, str]] = {}  # appointment id -> (key, practice id, practitioner id)
        for key, (end, prac) in zip(batch, pipe.execute(), strict=True):
            report.seen += 1
            appt_id = key.rpartition(":appt:")[2]
            pid = ids.practice_of(appt_id, "a")
            if end is not None and int(end) < cut_s and pid is not None:
                old[appt_id] = (key, pid, text(prac))
        if not old:
            return
        with self.db.connect() as c:
            stored = {
                r.id: (r.version, r.status)
                for r in c.execute(
                    select(appointments.c.id, appointments.c.version, appointments.c.status).where(
                        appointments.c.id.in_(list(old))
                    )
                )
            }
        for appt_id, (_key, pid, prac) in old.items():
            if appt_id not in stored:
                report.unstored += 1
                continue
            version, status = stored[appt_id]
            call = scripts.tidy_call(
                cut_s=cut_s, practice_id=pid, appointment_id=appt_id, practitioner_id=prac,
                stored_version=version, stored_status=status,
            )  # fmt: skip
            res = scripts.tidy_reply(self.lua(call))
            if res.status == "OK":
                report.removed += 1
            elif res.reason == "unstored":
                report.unstored += 1
