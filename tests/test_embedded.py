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
