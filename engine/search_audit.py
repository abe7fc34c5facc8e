"""The audit of searches answered from the availability cache, appended in batches after the answers.

A search the script computes is audited by that script, in the same step. A search answered from the cache
(fresh or stale) still appends its ``search`` event (what was asked, how many slots, ``source`` ``cache`` or
``stale``), but later: each API process gathers such events for ``flush_ms`` and appends them in one round trip
(``Lua.run_batch``: one pipeline of ``search`` calls with no practitioner, the audit-only form of the script).
A batch Redis does not take is sent again ``RETRIES`` times; what is still not appended then is counted
(``failed``, in /metrics as ``booking_search_cache_total{outcome="audit_failed"}``) and logged, never dropped
silently. The events keep the instant of the search (``at``), not of the append.
"""

from __future__ import annotations

import asyncio
import logging

from engine import scripts
from engine.context import Runtime
from engine.redis import clients
from engine.storm import Storm

REDIS_DOWN = clients.UNREACHABLE

log = logging.getLogger("booking.search")

RETRIES = 2
RETRY_WAIT_S = (0.2, 1.0)


class SearchAudits:
    def __init__(self, rt: Runtime, flush_ms: int = 20, max_pending: int = 100_000) -> None:
        self.rt = rt
        self.flush_s = flush_ms / 1000
        self.max_pending = max_pending
        self.pending: list[scripts.Call] = []
        self.appended = 0
        self.failed = 0
        self.batches = 0
        self._task: asyncio.Task[None] | None = None
        self.storm = Storm("search audit queue", log)  # lost batches: one line per outage (engine/storm.py)

    @property
    def idle(self) -> bool:
        """Nothing queued and no flush under way: every audit added so far is appended (or counted failed)."""
        return not self.pending and (self._task is None or self._task.done())

    def add(self, call: scripts.Call) -> None:
        """Queue one audit-only ``search`` call; the process's flusher appends it within about ``flush_ms``."""
        if len(self.pending) >= self.max_pending:
            self._lost(1, "the queue of search audits is full")
            return
        self.pending.append(call)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Every ``flush_ms`` while there is something to append (what arrives during a flush waits for the next
        one, so a busy process sends one batch per interval, not one per search)."""
        while True:
            await asyncio.sleep(self.flush_s)
            if not self.pending:
                return
            await self.flush()

    async def flush(self) -> None:
        """Append what is queued now: one round trip per batch, retried, and the rest counted."""
        batch, self.pending = self.pending, []
        await self._append(batch)

    async def _append(self, batch: list[scripts.Call]) -> None:
        self.batches += 1
        for attempt in range(RETRIES + 1):
            try:
                results = await self.rt.lua.run_batch(batch)
            except REDIS_DOWN:
                results = [None] * len(batch)
                again, refused = batch, []
            else:
                again = [c for c, r in zip(batch, results) if isinstance(r, REDIS_DOWN)]
                refused = [r for r in results if isinstance(r, BaseException) and not isinstance(r, REDIS_DOWN)]
                self.appended += len(batch) - len(again) - len(refused)
                if refused:
                    self._lost(len(refused), f"Redis refused them: {refused[0]!r}")
            if not again:
                if not refused:
                    self.storm.ok()
                return
            batch = again
            if attempt < RETRIES:
                await asyncio.sleep(RETRY_WAIT_S[attempt])
        self._lost(len(batch), "Redis unreachable")

    async def append_now(self, call: scripts.Call) -> None:
        """Append one event now, with the same retries and counting as a batch."""
        await self._append([call])

    async def close(self) -> None:
        """Append whatever is still queued (at shutdown)."""
        if self._task is not None and not self._task.done():
            await self._task  # never cancelled: it may hold a batch in flight
        while self.pending:
            await self.flush()

    def _lost(self, count: int, why: str) -> None:
        self.failed += count
        self.storm.failed(f"{count} search audit event(s) not appended: {why}")
