"""`booking bench --quick`: every scenario against every target (the waitlist's against the engine only) for a few
seconds, with the invariant checks.

A smoke test of the benchmark suite itself: it asserts that the suite runs and that no invariant broke,
never how fast anything was (speed belongs in `booking bench`, not in timed tests).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import processes

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(480)]

pytest.importorskip("hdrh", reason="the benchmark suite needs the `bench` extra: pip install -e '.[bench]'")
pytest.importorskip("matplotlib", reason="the benchmark suite needs the `bench` extra")

SCENARIOS = ("search", "funnel", "hotslot", "churn")
TARGETS = ("engine", "floor", "pgonly")
ENGINE_ONLY = ("waitlist",)  # the floor and the comparator have no waitlist


def _another_run_is_going() -> bool:
    import fcntl
    import tempfile

    with (Path(tempfile.gettempdir()) / "booking-bench.lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def run_bench(tmp_path: Path, args: list[str], db_prefix: str, timeout: float) -> Any:
    """`booking bench --quick ARGS` with its results in ``tmp_path`` (skips while another run measures)."""
    if _another_run_is_going():
        pytest.skip("a `booking bench` run is measuring on this machine (it owns the bench databases meanwhile)")
    booking = Path(sys.executable).parent / "booking"
    argv = [str(booking)] if booking.exists() else [sys.executable, "-m", "api.cli"]
    return processes.run(  # in its own process group: the servers the bench starts die with it at the timeout
        [*argv, "bench", "--quick", *args, "--results", str(tmp_path), "--set", f"db_prefix={db_prefix}", "--set",
         "lock_wait=120"],
        {**os.environ, "MPLBACKEND": "Agg"},
        timeout=timeout,
    )  # fmt: skip


def test_bench_quick_runs_every_scenario_and_target_without_breaking_an_invariant(tmp_path: Path) -> None:
    out = run_bench(
        tmp_path, [], "bench_smoke", 420
    )  # a hang guard, not a speed check: about 170 s on a loaded machine
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "booking bench: its own Redis at redis://127.0.0.1:" in out.stdout  # no --redis-url: none of ours flushed
    files = sorted(tmp_path.glob("bench-*.json"))
    assert len(files) == 1, list(tmp_path.iterdir())
    report = json.loads(files[0].read_text())
    assert report["failed"] is None
    assert report["invariant_violations"] == 0
    for target in TARGETS:
        for scenario in SCENARIOS:
            steps = report["runs"][target][scenario]
            assert steps and steps[0]["requests"] > 0, (target, scenario)
    for target in ("engine", "pgonly"):  # the floor stores nothing: nothing to check
        for scenario in SCENARIOS:
            verdict = report["invariants"][target][scenario]
            assert verdict["checked_bookings"] > 0 or scenario == "search", (target, scenario, verdict)
            for field in ("redis_overlaps", "db_overlaps", "missing_in_db", "missing_in_redis", "cancel_not_stored"):
                assert verdict[field] == 0, (target, scenario, verdict)
    for scenario in ENGINE_ONLY:  # churn with a waitlist: offers made, and every one exclusive and fair
        steps = report["runs"]["engine"][scenario]
        assert steps and steps[0]["requests"] > 0, scenario
        assert all(scenario not in report["runs"][t] for t in ("floor", "pgonly"))
        verdict = report["invariants"]["engine"][scenario]
        assert verdict["checked_bookings"] > 0 and verdict["waitlist_offers"] > 0, verdict
        assert verdict["waitlist_violations"] == 0, verdict
    assert sorted(tmp_path.glob("bench-*.png")), "the latency plot was not written"
