"""Before and after in one run: ``benchmarks/micro/inprocess.py`` (this checkout's harness) run by turns with the
interpreters of two checkouts, on one Redis, so that both see the same machine load. Each checkout is measured
``--repeats`` times in alternation (a fresh process each time); per operation the mean of the runs' means and the
lowest minimum are reported, with after / before.

    .venv/bin/python -m benchmarks.micro.compare --redis-url redis://127.0.0.1:6379/14 \\
        --before /tmp/old-checkout --after . [--repeats 3 --ops 2000]

A checkout is measured with its own ``.venv/bin/python`` from its own folder (so ``api``, ``engine`` and
``persistence`` are that checkout's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HARNESS = Path(__file__).resolve().parent / "inprocess.py"


def run_once(checkout: Path, redis_url: str, ops: int, rounds: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        argv = [str(checkout / ".venv" / "bin" / "python"), str(HARNESS), "--redis-url", redis_url,
                "--ops", str(ops), "--rounds", str(rounds), "--json", f.name]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        subprocess.run(argv, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(f.name).read_text())  # type: ignore[no-any-return]


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in runs[0]["ops"]:
        ms = [r["ops"][name] for r in runs]
        out[name] = {
            "api_cpu_us_mean": round(sum(m["api_cpu_us_mean"] for m in ms) / len(ms), 1),
            "api_cpu_us_min": min(m["api_cpu_us_min"] for m in ms),
            "redis_cpu_us_mean": round(sum(m["redis_cpu_us_mean"] for m in ms) / len(ms), 1),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    a = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    a.add_argument("--redis-url", required=True, help="a Redis database nobody else uses (flushed)")
    a.add_argument("--before", type=Path, required=True, help="the older checkout (with its .venv)")
    a.add_argument("--after", type=Path, default=Path("."), help="the newer checkout (default: this one)")
    a.add_argument("--repeats", type=int, default=3)
    a.add_argument("--ops", type=int, default=2000)
    a.add_argument("--rounds", type=int, default=10)
    a.add_argument("--json", default=None, help="also write every run's figures to this file")
    o = a.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for i in range(o.repeats):
        for side in ("before", "after"):
            runs[side].append(run_once(getattr(o, side).resolve(), o.redis_url, o.ops, o.rounds))
            print(f"run {i + 1}/{o.repeats} {side}: {runs[side][-1]['commit']}", file=sys.stderr, flush=True)
    s = {side: summarize(r) for side, r in runs.items()}
    b, af = runs["before"][0]["commit"], runs["after"][0]["commit"]
    print(
        f"| operation | API CPU µs mean, {b} | {af} | after/before | API CPU µs min, {b} | {af} | after/before |"
        f" Redis CPU µs mean, {b} | {af} |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in s["before"]:
        x, y = s["before"][name], s["after"][name]
        print(
            f"| {name} | {x['api_cpu_us_mean']} | {y['api_cpu_us_mean']} |"
            f" {y['api_cpu_us_mean'] / x['api_cpu_us_mean']:.2f} | {x['api_cpu_us_min']} | {y['api_cpu_us_min']} |"
            f" {y['api_cpu_us_min'] / x['api_cpu_us_min']:.2f} | {x['redis_cpu_us_mean']} | {y['redis_cpu_us_mean']} |"
        )
    if o.json:
        Path(o.json).write_text(json.dumps({"runs": runs, "summary": s}, indent=1))


if __name__ == "__main__":
    main()
