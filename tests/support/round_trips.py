"""Counting the Redis round trips of an app under test (issue 20, item 10).

``RoundTrips(client)`` hooks the app's own Redis client at the door of ``engine/redis/``: the ``observe`` hook of
``engine.redis.asyncio_client`` (called once for each command sent alone and once for each pipeline executed:
each is one round trip; a script Redis lost is three, EVALSHA, SCRIPT LOAD, EVALSHA) and the ``writes`` counter of
the process's pipelined reads (``engine.redis.pipelined``: the reads of one loop iteration go in one write, one
round trip however many they are). The app keeps its metrics hook: it is called as before.

A search answered from the cache queues its audit event for the process's next batch (engine/search_audit.py):
one pipeline per ``flush_ms`` for all the searches of that interval. Those round trips are made by the audit
flusher's task, not the request's; they are told apart by the task that made them and counted apart
(``Trips.audit``), after the request, once the queue is empty again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")
FLUSHER = "SearchAudits._flush_soon"  # engine/search_audit.py: the task that appends the queued audits
READS = "READS"  # one write of the pipelined reads


class Trips(NamedTuple):
    """The round trips of one request: its own, and the audit batches appended after it (each by name)."""

    request: list[str]
    audit: list[str]


def _task_name() -> str:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop running here
        return ""
    return "" if task is None else getattr(task.get_coro(), "__qualname__", "")


class RoundTrips:
    def __init__(self, client: Any) -> None:
        state = client.app.state
        self.state = state
        self.redis = state.redis
        self.reads = state.pipelined_reads
        self.sent: list[tuple[str, str]] = []  # (command or PIPELINE, the coroutine of the task that sent it)
        inner = self.redis.observe

        def observe(command: str, seconds: float) -> None:
            self.sent.append((command, _task_name()))
            if inner is not None:
                inner(command, seconds)

        self.redis.observe = observe

    def _writes(self) -> int:
        return 0 if self.reads is None else int(self.reads.writes)

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until the search audits queued so far are appended (the flusher runs on the app's loop)."""
        audits = self.state.engine.searcher.audits
        deadline = time.monotonic() + timeout_s
        while not audits.idle:
            if time.monotonic() > deadline:
                raise AssertionError(f"the search audits were still queued after {timeout_s} s")
            time.sleep(0.005)

    def of(self, request: Callable[[], T]) -> tuple[T, Trips]:
        """Run ``request`` (an HTTP call on the app) and return its answer and its round trips."""
        self.settle()
        sent, writes = len(self.sent), self._writes()
        answer = request()
        reads = self._writes() - writes  # read before settling: the flusher never uses the pipelined reads
        self.settle()
        mine = [name for name, task in self.sent[sent:] if task != FLUSHER] + [READS] * reads
        audit = [name for name, task in self.sent[sent:] if task == FLUSHER]
        return answer, Trips(mine, audit)
