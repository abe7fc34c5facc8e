"""Bounded probes for the operator endpoints: a blocking read (a Redis node's ROLE, the scrape-time gauges) runs
on a thread of its own, at most one at a time per probe, and a caller waits for it at most a budget.

A Redis that hangs (SIGSTOP, a stuck disk under `appendfsync always`) holds a blocking client for its whole
socket timeout; a caller that waited for it would answer late (the issue saw `/readyz` silent for 20 s and a
scrape take 10 s). Here the caller gives up after its budget and says ``timeout``; the read that is still running
is joined by the next caller instead of starting another (no pile of stuck threads), and its value, once it
arrives, is kept as the last sample (``last``), so a scrape shows values sampled in the background.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any


class ProbeTimeoutError(Exception):
    """The probe's read did not finish within the caller's budget (it may still be running)."""


class Probe:
    def __init__(self, name: str) -> None:
        self.name = name
        self.running: concurrent.futures.Future[Any] | None = None
        self.last: Any = None
        self.last_at = 0.0  # time.monotonic() of ``last``
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"probe-{name}")

    async def run(self, read: Callable[[], Any], budget: float) -> Any:
        """``read()``'s value, or ProbeTimeoutError after ``budget`` seconds; its own exception if it failed."""
        fut = self.running
        if fut is None or fut.done():
            fut = self.running = self._executor.submit(read)
            fut.add_done_callback(self._keep)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), budget)
        except TimeoutError:
            raise ProbeTimeoutError(f"{self.name}: no answer within {budget:g} s") from None

    def _keep(self, fut: concurrent.futures.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self.last, self.last_at = fut.result(), time.monotonic()

    def close(self) -> None:
        """Do not wait for a read that hangs: its thread ends with its client's socket timeout."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class Probes:
    """The app's probes by name, made on first use."""

    def __init__(self) -> None:
        self._by_name: dict[str, Probe] = {}

    def __getitem__(self, name: str) -> Probe:
        probe = self._by_name.get(name)
        if probe is None:
            probe = self._by_name[name] = Probe(name)
        return probe

    def close(self) -> None:
        for probe in self._by_name.values():
            probe.close()
