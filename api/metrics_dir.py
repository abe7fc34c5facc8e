"""The folder where `booking serve`'s workers write their metrics (prometheus-client's multiprocess mode).

No prometheus_client import here: the variable must be set before any process imports it."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path


def prepare(env: MutableMapping[str, str] = os.environ) -> str:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty folder (the workers inherit it): a fresh temporary one,
    removed at exit, or the operator's own, emptied of the files of an earlier run, whose counters would
    otherwise be added to this run's. One folder per `booking serve`."""
    path = env.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for old in Path(path).glob("*.db"):
            old.unlink(missing_ok=True)
        return path
    path = tempfile.mkdtemp(prefix="booking-metrics-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = path
    return path
