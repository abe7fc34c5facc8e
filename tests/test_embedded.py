"""The embedded default: no servers, an in-process Redis (fakeredis with Lua), the same flows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from tests.conftest import free_port, next_weekday, search, setup_practice


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


def test_booking_serve_demo_starts_with_no_servers_and_offers_slots() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "BOOKING_ADMIN_TOKEN")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.time() + 60
        assert proc.stdout is not None
        while time.time() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("Try: curl"):
                break
        url = lines[-1].split("'")[1]
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200 and len(r.json()["slots"]) > 50, "".join(lines)
        assert r.json()["timezone"] == "Europe/Paris"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
