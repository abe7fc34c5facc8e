"""One log line per retry storm (issue 21, item 7), not one per retry.

A loop that retries on a Redis or PostgreSQL failure (the persister, the notification worker's loops, the webhook
deliverer, the hold sweeper, the search-audit queue, cluster routing, the API's 503 answers) reports each failure
to its ``Storm`` and each success to ``ok``. The storm logs when it starts (what failed, the error), at most one
summary a minute while it lasts (how many failures, the last error), and one line when it is over (how long, how
many). Pure: the clock is injected, nothing here touches a server; the caller's logger writes the lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

SUMMARY_EVERY_S = 60.0


class Storm:
    """The retry storm of one loop and one dependency (``what``: e.g. "persister: database")."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        summary_every_s: float = SUMMARY_EVERY_S,
        level: int = logging.WARNING,
    ) -> None:
        self.what, self.log, self.clock, self.summary_every_s = what, log, clock, summary_every_s
        self.level = level
        self.lock = threading.Lock()  # the API's storms are shared by its threads (to_thread) and its loop
        self.started: float | None = None  # None: calm
        self.failures = 0  # in this storm
        self.summarised_at = 0.0
        self.summarised_failures = 0
        self.last_error = ""

    @property
    def active(self) -> bool:
        return self.started is not None

    def failed(self, error: BaseException | str) -> None:
        """One failure: the storm's first line, or a summary when a minute passed since the last line."""
        why = _describe(error)
        with self.lock:
            now = self.clock()
            self.last_error = why
            if self.started is None:
                self.started, self.failures, self.summarised_at, self.summarised_failures = now, 1, now, 1
                self.log.log(self.level, "%s: %s; retrying, one summary a minute until it recovers", self.what, why)
                return
            self.failures += 1
            if now - self.summarised_at < self.summary_every_s:
                return
            since, gap = self.failures - self.summarised_failures, now - self.summarised_at
            self.summarised_at, self.summarised_failures = now, self.failures
            lasted, failures = now - self.started, self.failures
        self.log.log(
            self.level,
            "%s: still failing after %.0fs, %d failures (%d in the last %.0fs); last: %s",
            self.what, lasted, failures, since, gap, why,
        )  # fmt: skip

    def ok(self) -> None:
        """A success: the storm, if one was on, is over (one line); nothing when calm."""
        if self.started is None:  # the common case, without the lock
            return
        with self.lock:
            if self.started is None:
                return
            lasted, failures, why = self.clock() - self.started, self.failures, self.last_error
            self.started, self.failures = None, 0
        self.log.log(self.level, "%s: recovered after %.1fs, %d failures; last: %s", self.what, lasted, failures, why)


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
