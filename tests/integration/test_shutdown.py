"""The app's background loops (hold sweeper, horizon roll) stop when the app shuts down, even when a
cancellation is lost on the way.

CI hung twice in `TestClient.__exit__`: the lifespan cancels its loops and waits for them, and one loop never
ended. On Python 3.11, `asyncio.wait_for` returns the awaited result instead of raising CancelledError when
the cancellation arrives in the loop step the awaited thing finishes in; redis-py wraps every command in it
(the app sets `socket_timeout`), so a shutdown landing while the sweeper talked to Redis could be swallowed
and the loop ran on. The tests fail (by a bounded wait, never a hang) if a lost cancellation keeps a loop alive.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import _every, create_app, make_redis
from engine.holds import Holds
from engine.service import BookingEngine
from tests.support.config import settings_for

pytestmark = pytest.mark.timeout(60)


class LosesOneCancellation:
    """A job that, once, loses the cancellation that arrives while it waits, as asyncio.wait_for does on 3.11
    when the awaited command completes in the same loop step; every later cancellation goes through."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.lost = 0
        self.runs = 0

    async def __call__(self) -> None:
        self.runs += 1
        if self.lost:
            await asyncio.sleep(0)
            return
        self.waiting.set()
        try:
            await asyncio.sleep(3600)  # the command in flight
        except asyncio.CancelledError:
            self.lost += 1  # ... finished just as the cancellation came: its result is returned instead


def test_a_loop_whose_job_loses_the_cancellation_still_stops() -> None:
    async def main() -> tuple[bool, int]:
        job = LosesOneCancellation()
        task = asyncio.create_task(_every(0.01, job, "test loop"))
        await job.waiting.wait()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:  # free the loop so the test ends: a second cancellation is not lost
            task.cancel()
            await asyncio.wait({task}, timeout=5)
        return bool(done), job.lost

    stopped, lost = asyncio.run(main())
    assert lost == 1, "the job did not see the cancellation (the test proves nothing)"
    assert stopped, "the loop ran on after its cancellation was lost"


@pytest.mark.integration
def test_the_sweeper_on_the_real_redis_stops_whenever_it_is_cancelled(redis_url: str) -> None:
    """The real sweep on the real Redis client, as the app builds it, cancelled at random moments: every
    cancellation ends the loop. (Before the fix about a third of these were lost on Python 3.11.)"""

    async def main() -> list[int]:
        settings = settings_for(redis_url)
        redis = make_redis(settings)
        engine = BookingEngine(redis, settings)
        rnd = random.Random(7)
        ignored = []
        try:
            for attempt in range(40):
                task = asyncio.create_task(_every(0, engine.expire_due_holds, "hold sweeper"))
                await asyncio.sleep(rnd.random() * 0.01)
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=2)
                if not done:
                    ignored.append(attempt)
                    while not task.done():  # free the loop: a later cancellation gets through
                        task.cancel()
                        await asyncio.wait({task}, timeout=1)
                    break
        finally:
            await redis.aclose()
        return ignored

    assert asyncio.run(main()) == [], "cancellations the sweeper loop did not stop for"


@pytest.mark.integration
def test_test_client_exit_finishes_when_the_sweeper_loses_the_cancellation(
    redis_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The symptom itself: TestClient.__exit__ (the app's lifespan shutdown) returns although the sweeper lost
    its cancellation. Run in a thread with a deadline, so that without the fix the test fails, not hangs."""
    job = LosesOneCancellation()
    seen: dict[str, Any] = {}

    async def sweep(self: Holds, limit: int = 200) -> int:
        seen["loop"], seen["task"] = asyncio.get_running_loop(), asyncio.current_task()
        await job()
        return 0

    monkeypatch.setattr(Holds, "expire_due_holds", sweep)  # the sweeper's work (engine/holds.py)
    client = TestClient(create_app(settings_for(redis_url, database_url=database_url, sweep_interval_seconds=0.01)))
    client.__enter__()
    assert client.get("/readyz").status_code == 200
    client.blocking_portal.call(job.waiting.wait)  # the sweeper is inside its command
    closing = threading.Thread(target=client.__exit__, args=(None, None, None), daemon=True)
    closing.start()
    closing.join(20)
    hung = closing.is_alive()
    if hung:  # free the loop so the test ends: a second cancellation is not lost
        seen["loop"].call_soon_threadsafe(seen["task"].cancel)
        closing.join(20)
    assert job.lost == 1, "the sweeper did not see the cancellation (the test proves nothing)"
    assert not hung, "TestClient.__exit__ waited for a sweeper that lost its cancellation"
