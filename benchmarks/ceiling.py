"""The generator's own ceiling: the same processes and connections against a trivial raw-asyncio server."""

from __future__ import annotations

from typing import Any

from benchmarks import cpu, results, targets
from benchmarks.dataset import Dataset, HotSpot, PracticeData
from benchmarks.loadgen import GeneratorPool


def measure(bench: Any, log: Any) -> dict[str, Any]:
    """The highest rate the generator meets against a trivial server (every later step is judged by it)."""
    if not bench.o.ceiling_rates:
        return {"rate": None, "skipped": "no --ceiling-rates"}
    log(f"== generator ceiling: {bench.o.gen_procs} processes, {bench.o.connections} connections, trivial server")
    srv = bench._start(targets.start_trivial(bench.logs))
    dummy = Dataset(
        practices=[PracticeData(id="0" * 16, timezone="UTC", practitioners=["r"], visit_types=[("v", 30)])],
        first_date="2030-01-01",
        search_days=1,
        hot=HotSpot(practice_id="0" * 16, practitioner_id="r", visit_types=["v"], starts=["2030-01-02T09:00:00+00:00"]),
    )
    pool = GeneratorPool(srv.url, dummy, None, bench.o.gen_procs)
    steps = []
    try:
        for rate in bench.o.ceiling_rates:
            meter = cpu.CpuMeter({"generator": pool.pids(), "trivial server": [srv.pid]})
            r = results.merge("trivial", bench._step("hotslot", rate), pool.run(bench._step("hotslot", rate)), None)
            r["cpu_percent"] = meter.stop()
            steps.append(r)
            log(
                f"   {rate:>7.0f}/s offered: {r['achieved_rate']:>8.0f}/s achieved, p99 {r['all'].get('p99')} ms,"
                f" generator lag p99 {r['generator_lag_p99_ms']} ms, cpu {r['cpu_percent']}"
            )
            if r["achieved_rate"] < 0.97 * rate or r["generator_lag_p99_ms"] > bench.o.late_ms:
                break
    finally:
        pool.close()
        bench._stop(srv)
    good = [
        r
        for r in steps
        if r["achieved_rate"] >= 0.97 * r["offered_rate"] and r["generator_lag_p99_ms"] <= bench.o.late_ms
    ]
    rate = max((r["achieved_rate"] for r in good), default=None)
    last = steps[-1] if steps else None
    capped = bool(last and last in good)  # never failed: the true ceiling is higher than we asked
    log(f"   ceiling: {rate or 0:.0f}/s" + (" (at least: every rate asked was met)" if capped else ""))
    return {"rate": rate, "at_least": capped, "steps": steps}
