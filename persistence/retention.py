"""The appointment tidy: appointments that ended more than ``APPOINTMENT_RETENTION_DAYS`` ago leave Redis.

Once an hour (one process at a time: ``keys.TIDY_LOCK``) the persister walks the appointment hashes (one SCAN over
the keyspace, every primary on a cluster: not a hot path), keeps those that ended before the cut, reads the
version and status the database holds for them, and runs ``tidy.lua`` for each: the script removes the hash only
if it still ended before the cut and Redis holds exactly what the database holds. An appointment the database
lacks, or holds in an older version (a change the persister has not stored yet), stays. Afterwards the API reads
it from the database (persistence/archive.py). Its claim went already with the horizon roll (the script removes
it too, should it still be there).

Booked series go the same way (``series_tidy.lua``): the same pass then walks the series hashes and removes a
booked one once every occurrence's appointment has left Redis and the database holds the series; it is then read
from the database too. A held series needs no tidy: its hash expires with its holds.
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
from persistence.tables import appointments, series

log = logging.getLogger("booking.retention")
INTERVAL_S = 3600.0
BATCH = 500
STEP_S = 0.25  # at most this long per maintenance tick: the persister's heartbeats and batches go on between


class TidyReport(msgspec.Struct):
    removed: int = 0
    unstored: int = 0  # ended before the cut, but the database lacks it or holds an older version: kept
    seen: int = 0
    series_removed: int = 0  # booked series whose occurrences had all left Redis


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
        self.lua = SyncLua(redis, ("tidy", "series_tidy"))
        self._last = 0.0
        self._pass: tuple[Iterator[tuple[str, list[str]]], int, TidyReport] | None = (
            None  # a pass under way: batches, cut
        )

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
            self._pass = (self._all_batches(), cut_s, TidyReport())
        batches, cut_s, report = self._pass
        until = monotonic() + STEP_S
        for kind, batch in batches:
            self._tidy(kind, batch, cut_s, report)
            if monotonic() >= until:
                return None
        self._pass = None
        if report.removed or report.unstored or report.series_removed:
            log.info(
                "tidy: %d appointment(s) that ended more than %d days ago left Redis; %d kept (not yet stored); "
                "%d booked series left Redis",
                report.removed, self.retention_days, report.unstored, report.series_removed,
            )  # fmt: skip
        return report

    def run(self, now_s: float | None = None) -> TidyReport:
        cut_s = int(self.clock() if now_s is None else now_s) - self.retention_days * 86400
        report = TidyReport()
        for kind, batch in self._all_batches():
            self._tidy(kind, batch, cut_s, report)
        return report

    def _all_batches(self) -> Iterator[tuple[str, list[str]]]:
        """The appointment hashes, then the series hashes (a series goes once its appointments went)."""
        for batch in _batches(self.redis.scan_iter(match=keys.appointment_pattern(), count=1000), BATCH):
            yield "appointment", batch
        for batch in _batches(self.redis.scan_iter(match=keys.series_pattern(), count=1000), BATCH):
            yield "series", batch

    def _tidy(self, kind: str, batch: list[str], cut_s: int, report: TidyReport) -> None:
        if kind == "series":
            self._tidy_series(batch, report)
        else:
            self._tidy_batch(batch, cut_s, report)

    def _tidy_series(self, batch: list[str], report: TidyReport) -> None:
        """Booked series whose every appointment left Redis (the appointment tidy took them) and that the database
        holds: removed by series_tidy.lua, which checks both again."""
        pipe = self.redis.pipeline(transaction=False)
        for key in batch:
            pipe.hmget(key, "state", "appointments")
        booked: dict[str, tuple[str, list[str]]] = {}  # series id -> (practice id, its appointment ids)
        for key, (state, appts) in zip(batch, pipe.execute(), strict=True):
            series_id = key.rpartition(":series:")[2]
            pid = ids.practice_of(series_id, "s")
            if state is not None and text(state) == "booked" and appts and pid is not None:
                booked[series_id] = (pid, text(appts).split(","))
        if not booked:
            return
        pipe = self.redis.pipeline(transaction=False)
        for pid, appt_ids in booked.values():
            pipe.exists(*(keys.appointment(pid, a) for a in appt_ids))
        gone = [sid for sid, n in zip(booked, pipe.execute(), strict=True) if n == 0]
        if not gone:
            return
        with self.db.connect() as c:
            stored = set(c.execute(select(series.c.id).where(series.c.id.in_(gone))).scalars())
        for sid in gone:
            if sid not in stored:
                continue
            pid, appt_ids = booked[sid]
            call = scripts.series_tidy_call(practice_id=pid, series_id=sid, appointment_ids=appt_ids)
            if scripts.tidy_reply(self.lua(call)).status == "OK":
                report.series_removed += 1

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
