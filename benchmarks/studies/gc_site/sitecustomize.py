"""The gc study (`booking bench --set engine_gc=G0,G1,G2`): put on the engine's PYTHONPATH, this sets the garbage
collector's thresholds in every process it starts, uvicorn's spawned workers included, without touching the
product's code. BENCH_GC_THRESHOLD is "gen0,gen1,gen2" (see gc.set_threshold).

Conclusion (round of 2026-11-25): full collections of a busy worker took 25-100 ms over 50,000-166,000 long-lived objects
and froze every connection it held; with gc.set_threshold(50000, 20, 100) search p99 fell from 113 to 6.4 ms at
600/s and from 551 to 22 ms at 1,200/s. Adopted: api/app.py's _tune_gc (gc.freeze() after start-up and those
thresholds) in every worker, so the default run needs this no more (figures:
benchmarks/results/2026-11-25_to_12-03-notebook.md, "Findings of the earlier run", 2)."""

import gc
import os

_t = os.environ.get("BENCH_GC_THRESHOLD")
if _t:
    gc.set_threshold(*(int(x) for x in _t.split(",")))
