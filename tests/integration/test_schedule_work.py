"""A schedule PUT's slot generation does not hold the event loop (issue 22, item 6): a 730-day horizon with the
schema's 1,000 closures and three visit types stalled /healthz for seconds. The generation runs in a worker thread,
closures merged once, so the process answers other requests while a PUT is being computed."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from engine import availability
from tests.support.config import WEEKDAYS
from tests.support.http import setup_practice


def test_other_requests_are_answered_while_a_heavy_schedule_is_computed(
    make_client: Callable[..., TestClient[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[bool] = []  # for each slot generation: whether it ran on the event loop's thread
    generate = availability._day_plans

    def spy(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return generate(*args)

    monkeypatch.setattr(availability, "_day_plans", spy)
    c = make_client()
    ctx = setup_practice(c, durations=(10, 20, 30))
    pr = ctx["practitioners"][0]
    today = dt.date.today()
    closures = [
        {
            "start": f"{(today + dt.timedelta(days=d)).isoformat()}T12:00:00+01:00",
            "end": f"{(today + dt.timedelta(days=d)).isoformat()}T12:40:00+01:00",
            "reason": "l",
        }
        for d in range(1, 501)
    ]
    body = {
        "weekly": [{"day": d, "start": "00:00", "end": "24:00"} for d in WEEKDAYS],
        "closures": closures,
        "slot_step_minutes": 5,
        "horizon_days": 730,
    }
    put_done = threading.Event()
    during: list[int] = []

    def poll() -> None:
        while not put_done.is_set():
            r = c.get("/healthz")
            if not put_done.is_set():
                during.append(r.status_code)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        r = c.put(f"/v1/practitioners/{pr}/schedule", json=body)
    finally:
        put_done.set()
        poller.join(timeout=30)
    assert r.status_code == 200, r.text
    assert on_loop and not any(on_loop), on_loop  # every generation (setup's and this PUT's) off the loop
    assert during.count(200) >= 3, during  # and the process answered meanwhile
