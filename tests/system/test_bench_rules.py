"""`booking bench --preset practice-rules` for a few seconds against its own server (and its own Redis): the rules
scenario runs (searches, holds, bookings, releases, cancels on practices with buffers, daily limits and, when the
engine has resources, a shared room) and its invariant check reads Redis and PostgreSQL and finds nothing broken:
the practices share a room (POST /v1/practices/{id}/resources answers 201) and the room claims were checked.

A smoke test of the suite: it asserts the scenario runs and the rules held, never how fast anything was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.test_bench_smoke import run_bench

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

pytest.importorskip("hdrh", reason="the benchmark suite needs the `bench` extra: pip install -e '.[bench]'")
pytest.importorskip("matplotlib", reason="the benchmark suite needs the `bench` extra")


def test_bench_practice_rules_runs_and_its_rules_hold(tmp_path: Path) -> None:
    out = run_bench(tmp_path, ["--preset", "practice-rules", "--rates", "150", "--duration", "3"], "bench_rules", 260)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "practice-rules practices (" in out.stdout  # says whether the practices share a room
    assert "no shared room" not in out.stdout, out.stdout[-4000:]  # POST /v1/practices/{id}/resources exists
    assert "one shared room per practice" in out.stdout
    assert "practice rules OK (" in out.stdout, out.stdout[-4000:]
    report = json.loads(sorted(tmp_path.glob("bench-*.json"))[0].read_text())
    assert report["failed"] is None and report["invariant_violations"] == 0
    assert set(report["runs"]) == {"engine"} and set(report["runs"]["engine"]) == {"rules"}
    step = report["runs"]["engine"]["rules"][0]
    assert step["requests"] > 0 and step["per_type"].get("hold", {}).get("count", 0) > 0, step
    verdict = report["invariants"]["engine"]["rules"]
    assert verdict["checked_bookings"] > 0 and verdict["rules_claims"] > 0, verdict
    assert verdict["rules_violations"] == 0 and verdict["redis_overlaps"] == 0 and verdict["db_overlaps"] == 0
    # the room was used: live room claims were read from Redis and checked against the claims that need the room
    assert verdict["rules_room_claims"] > 0, verdict
    assert "practice rules:" in out.stdout  # the report's table prints the check's result
