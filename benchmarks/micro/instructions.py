"""API cost per operation in CPU instructions, counted by valgrind (callgrind), before and after a change.

``time.process_time`` on a shared 2-core machine moves by 10-20 % between runs of the same code (the caches and the
scheduler are shared with whatever else runs); an instruction count does not depend on the load, so a few per cent
can be told apart. Each checkout runs ``benchmarks/micro/inprocess.py``'s operations (the API as an ASGI app in
process, cache on, one practice of 4 practitioners) under ``valgrind --tool=callgrind``, collecting only inside
the measured batch: the batch is run through ``operator.call`` (used nowhere else) and callgrind collects with
``--toggle-collect=_operator_call``. Set-up, warm-up (300 operations) and shutdown are not counted.

    .venv/bin/python -m benchmarks.micro.instructions --redis-url redis://127.0.0.1:6408/14 \\
        --before /tmp/old-checkout --after . --ops 500

Each checkout needs its own ``.venv`` (an older one: ``python3 -m venv .venv && .venv/bin/pip install -e
'.[bench]'``). valgrind slows Python about 50 times: 500 searches take a few minutes. The run-to-run spread of
the same code is 2-3 % (timers and the event loop's idle turns differ); compare figures of several runs.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()

# the driver: run by the checkout's interpreter, with the checkout first on sys.path and this file's harness
DRIVER = r"""
import asyncio, datetime as dt, importlib.util, operator, os, sys
sys.path.insert(0, os.getcwd())
spec = importlib.util.spec_from_file_location("inprocess", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
url, name, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
r = m.sync_redis(url)
r.flushdb()
app = m.make_app(url, m.CACHE_BYTES)
lifespan = app.lifespan()
loop.run_until_complete(lifespan.__aenter__())

async def setup():
    practice = (await m.seed(app, 1, 4))[0]
    ops = m.Ops(app, practice, await m.offered(app, practice, dt.date.today() + dt.timedelta(days=3), 14))
    await m.batch(ops, name, 300, r)
    return ops

ops = loop.run_until_complete(setup())
operator.call(loop.run_until_complete, m.batch(ops, name, n, r))
try:  # the lifespan was entered by another task: anyio may refuse to leave its cancel scope from this one
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
except RuntimeError:
    pass
r.flushdb()
"""


def count(checkout: Path, redis_url: str, op: str, n: int) -> int:
    """Instructions callgrind counted in ``n`` operations ``op`` of ``checkout``."""
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / "driver.py"
        driver.write_text(DRIVER)
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=_operator_call",
            f"--callgrind-out-file={out}", str(checkout / ".venv/bin/python"), str(driver),
            str(HERE.parent / "inprocess.py"), redis_url, op, str(n),
        ]  # fmt: skip
        # a fixed hash seed: dict and set layouts (and so the work of every lookup) the same in every run
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, env=env)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            sys.exit(f"callgrind on {checkout} ({op}) failed:\n{done.stderr[-3000:]}")
        return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    a = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    a.add_argument("--redis-url", required=True, help="a Redis database nobody else uses (flushed before and after)")
    a.add_argument("--before", type=Path, required=True, help="the older checkout (with its own .venv)")
    a.add_argument("--after", type=Path, default=Path("."), help="the newer checkout (default: %(default)s)")
    a.add_argument("--ops", type=int, default=500, help="measured operations of each kind (default: %(default)s)")
    a.add_argument("--only", default="search,hold,hold-public", help="comma list (default: %(default)s)")
    args = a.parse_args(argv)
    print("| operation | instructions per op, before | after | after/before |")
    print("|---|---|---|---|")
    for op in args.only.split(","):
        before = count(args.before.resolve(), args.redis_url, op, args.ops) / args.ops
        after = count(args.after.resolve(), args.redis_url, op, args.ops) / args.ops
        print(f"| {op} | {before:,.0f} | {after:,.0f} | {after / before:.3f} |", flush=True)


if __name__ == "__main__":
    main()
