"""Diagnostics only (`booking bench --engine-gc`): put on the engine's PYTHONPATH, this sets the garbage
collector's thresholds in every process it starts, uvicorn's spawned workers included, without touching the
product's code. BENCH_GC_THRESHOLD is "gen0,gen1,gen2" (see gc.set_threshold)."""

import gc
import os

_t = os.environ.get("BENCH_GC_THRESHOLD")
if _t:
    gc.set_threshold(*(int(x) for x in _t.split(",")))
