"""`booking bench`: the benchmark suite (docs/benchmarks.md).

Exit status: 0 when every invariant held, 1 when a benchmark broke one (overlapping bookings, a 201 not
stored), 2 when the suite itself could not run.
"""

from __future__ import annotations

import fcntl
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import options, report
from benchmarks.runner import Bench

LOCK = Path(tempfile.gettempdir()) / "booking-bench.lock"


def hold_lock(wait: float) -> Any:
    """One `booking bench` at a time on a machine: every run drops and creates the same PostgreSQL databases
    (``--db-prefix``), and one run's load would skew another's measurements."""
    f = LOCK.open("w")
    deadline = time.time() + wait
    said = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.time() >= deadline:
                f.close()
                return None
            if not said:
                print(f"booking bench: another run holds {LOCK}; waiting up to {wait:.0f}s", flush=True)
                said = True
            time.sleep(1)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # `kill` stops a run like Ctrl-C: its servers are stopped and the results written


def main(argv: list[str]) -> int:
    opts = options.parse(argv)
    if opts.redis_url is not None and not opts.target_url and (keys := _keys(opts)):
        print(
            f"booking bench: {opts.redis_url} holds {keys} keys; the suite flushes its Redis between targets, so it "
            "runs only on an empty one (or leave out --redis-url: it starts its own)",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    lock = hold_lock(opts.lock_wait)
    if lock is None:
        print(f"booking bench: another run still holds {LOCK}", file=sys.stderr)
        return 2
    own = None
    try:
        if opts.redis_url is None:  # a server of its own: it never flushes a database it did not create
            from api.embedded import EmbeddedRedis

            folder = tempfile.mkdtemp(prefix="booking-bench-redis-")
            own = EmbeddedRedis(folder, durable=False)
            opts.redis_url = own.start()
            print(f"booking bench: its own Redis at {opts.redis_url} (stopped at the end)", flush=True)
        return _main(argv, opts)
    finally:
        if own is not None:
            own.stop()
            shutil.rmtree(folder, ignore_errors=True)
        lock.close()


def _keys(opts: options.Options) -> int:
    """How many keys the given Redis holds (on a cluster: all its primaries)."""
    r = opts.redis()
    try:
        return int(r.dbsize())
    finally:
        r.close()


def _main(argv: list[str], opts: options.Options) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = Path(opts.results)
    out_dir = results_dir / f"bench-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = "booking bench " + shlex.join(argv)
    print(f"booking bench: results in {out_dir} ({command})", flush=True)
    bench = Bench(opts, out_dir)
    data: dict[str, object] = {
        "command": command,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": msgspec.to_builtins(opts),
        "machine": report.machine(opts.redis()),
        "config": {
            "server": f"{opts.server} (booking serve; the floor and the comparator alike)",
            "workers": opts.workers,
            "generator": f"{opts.gen_procs} processes, raw asyncio HTTP/1.1 keep-alive (uvloop + httptools)",
            "auth": "admin bearer token on every request (no abuse limits)",
            "engine_env": "BOOKING_AUDIT_SEARCHES=1 HOLD_TTL_SECONDS=300, plus `booking persister`",
            "comparator_pool": f"{opts.pgonly_pool} connections per worker",
        },
    }
    failed = None
    t0 = time.time()
    try:
        data.update(bench.run())
    except KeyboardInterrupt:
        failed = "interrupted"
    except Exception as exc:  # noqa: BLE001 - write what we have, then say what broke
        failed = f"{exc.__class__.__name__}: {exc}"
        traceback.print_exc()
    data["elapsed_s"] = round(time.time() - t0, 1)
    data.setdefault("runs", {})
    data["comparisons"] = report.comparisons(data, opts.slo_p99_ms)
    data["goals"] = report.goals(data, opts.slo_p99_ms)
    bad = report.violations(data)
    data["invariant_violations"] = bad
    data["failed"] = failed
    json_path = results_dir / f"bench-{stamp}.json"
    report.write(data, opts, json_path)
    print()
    print(report.table(data, opts.slo_p99_ms))
    if data["runs"]:
        png = results_dir / f"bench-{stamp}.png"
        report.plot(data, png)
        print(f"\nplot: {png}")
    print(f"json: {json_path}")
    if bad:
        print(
            f"booking bench: {bad} run(s) BROKE AN INVARIANT (overlapping bookings or a 201 not stored)",
            file=sys.stderr,
        )
        return 1
    if failed:
        print(f"booking bench: the suite could not finish: {failed}", file=sys.stderr)
        return 2
    return 0
