"""LOG_FORMAT=json across the processes (issue 21): `booking serve` (its granian workers and granian itself) and
`booking persister` write one JSON object a line; with ACCESS_LOG=1 each request writes a line with the
X-Request-ID it answered, its method, path, status and duration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import fresh_database
from tests.support.processes import Procs
from tests.support.servers import RedisServer, serve_env, start_persister, start_serve, wait_until

pytestmark = [pytest.mark.integration]
PRINTED = (
    "persister: start-up reconciliation done",
    "booking: serving on",
)  # what the commands print for a person, not log


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a process's output as JSON (each must be one), leaving out the commands' own prints."""
    return [json.loads(line) for line in text.splitlines() if line.strip() and not line.startswith(PRINTED)]


def test_serve_and_persister_log_json_with_request_ids(procs: Procs, tmp_path: Path) -> None:
    rs = RedisServer(procs, tmp_path / "redis", aof=False)
    rs.start()
    env = serve_env(rs.url, fresh_database("booking_logs"), LOG_FORMAT="json", ACCESS_LOG="1")
    persister = start_persister(procs, env)
    server = start_serve(procs, env, workers=1)
    got = httpx.get(f"{server.url}/v1/practices/nope", headers={"X-Request-ID": "tour-21"}, timeout=10)
    assert got.status_code == 404 and got.headers["x-request-id"] == "tour-21"
    fresh = httpx.get(f"{server.url}/healthz", timeout=10).headers["x-request-id"]

    def access_lines() -> list[dict[str, Any]]:
        return [line for line in _json_lines(procs.log_of(server.proc)) if line["logger"] == "booking.access"]

    wait_until(lambda: len({line["request_id"] for line in access_lines()} & {"tour-21", fresh}) == 2, 30,
               "both requests' access lines")  # fmt: skip
    mine = next(line for line in access_lines() if line["request_id"] == "tour-21")
    assert (mine["method"], mine["path"], mine["status"]) == ("GET", "/v1/practices/nope", 404)
    assert mine["duration_ms"] >= 0 and mine["level"] == "INFO"
    served = _json_lines(procs.log_of(server.proc))
    logged = _json_lines(procs.log_of(persister))
    assert any(line["logger"].startswith("booking.") for line in logged), logged
    assert all({"time", "level", "logger", "message"} <= set(line) for line in served + logged)
