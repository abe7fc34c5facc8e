"""The embedded default: no servers, an in-process Redis (fakeredis with Lua), the same flows. `booking serve
--demo` runs in its own process group, stopped with it whatever the test's outcome."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import processes
from tests.support.http import next_weekday, search, setup_practice
from tests.support.servers import CLI, free_port, wait_until


def test_embedded_mode_runs_the_whole_flow(make_client: Any) -> None:
    c = make_client(embedded=True)
    ctx = setup_practice(c, durations=(15, 30))
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(1)
    before = search(c, pid, vt, day)
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": before[0]["start"]})
    assert h.status_code == 201
    taken = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": before[0]["start"]})
    assert taken.status_code == 409
    a = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "E", "email": "e@x.io"}})
    assert a.status_code == 201
    assert before[0]["start"] not in [s["start"] for s in search(c, pid, vt, day)]
    assert c.post(f"/v1/appointments/{a.json()['id']}/cancel").status_code == 200
    assert search(c, pid, vt, day) == before
    assert c.get("/readyz").json()["embedded"] is True


def test_booking_serve_demo_starts_with_no_servers_and_offers_slots(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "BOOKING_ADMIN_TOKEN")}
    log = tmp_path / "serve.log"
    proc = processes.spawn([*CLI, "serve", "--demo", "--port", str(port)], env, log=log)
    try:

        def seeded() -> list[str]:
            if proc.poll() is not None:
                pytest.fail(f"booking serve --demo exited with {proc.returncode}:\n{log.read_text()}")
            return [line for line in log.read_text().splitlines() if line.startswith("Try: curl")]

        # as long as booking serve --demo itself waits for its readiness
        url = wait_until(seeded, 180, "the demo to be seeded")[0].split("'")[1]
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200 and len(r.json()["slots"]) > 50, log.read_text()
        assert r.json()["timezone"] == "Europe/Paris"
    finally:
        processes.stop(proc)


def test_serve_demo_seeds_from_another_process_not_a_thread_of_the_forking_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """granian forks its workers from the process `booking serve` runs in. A seeding thread importing at that
    moment left a worker holding a copy of a locked import lock: it hung for ever (a fresh-clone CI's demo never
    answered). No thread may run there when the server starts; the seeding is a process of its own."""
    import argparse
    import threading

    from api import metrics_dir, serving

    started: list[list[str]] = []
    seen: dict[str, Any] = {}

    class FakePopen:
        def __init__(self, argv: list[str], env: dict[str, str]) -> None:
            started.append(argv)
            seen["env"] = env

    def at_fork_time(args: argparse.Namespace) -> None:
        seen["threads"] = set(threading.enumerate())

    before = set(threading.enumerate())
    monkeypatch.setattr(serving.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(serving, "_serve_granian", at_fork_time)
    monkeypatch.setattr(metrics_dir, "prepare", lambda: "")  # it would set PROMETHEUS_MULTIPROC_DIR for the session
    monkeypatch.delenv("REDIS_URL", raising=False)
    args = argparse.Namespace(host="127.0.0.1", port=8999, workers=1, demo=True, server="granian")
    assert serving.serve(args) == 0
    # nothing started in this process (a thread an earlier test left may have ended meanwhile: 3 == 4 failed a CI)
    assert seen["threads"] - before == set()
    assert len(started) == 1 and "seed_main" in started[0][-1]
    assert seen["env"]["BOOKING_SEED_BASE"] == "http://127.0.0.1:8999"
    assert seen["env"]["BOOKING_SEED_PARENT"] == str(os.getpid())
