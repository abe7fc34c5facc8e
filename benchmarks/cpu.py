"""CPU time per component during a step (from /proc), as a share of one core (100 = one core busy): on
2 cores the generator, the server, Redis and PostgreSQL all compete, and the report says who used what.
`machine` is every process on the machine together (200 = both cores saturated; processes that start or
end during the step are left out, so it is a lower bound)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system seconds of one process (0 when it is gone)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    return 0.0


def pids_named(name: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if (p / "comm").read_text().strip() == name:
                    out.append(int(p.name))
    return out


def all_processes() -> dict[int, float]:
    """CPU seconds of every process on the machine."""
    return {int(p.name): cpu_seconds(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}


class CpuMeter:
    """Start with {component: [pids]}; `stop()` gives {component: percent of one core}."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.t0 = time.time()
        self.before = {name: sum(cpu_seconds(p) for p in pids) for name, pids in groups.items()}
        self.machine0 = all_processes()

    def stop(self) -> dict[str, float]:
        wall = max(1e-6, time.time() - self.t0)
        out = {
            name: round(100 * (sum(cpu_seconds(p) for p in pids) - self.before[name]) / wall, 1)
            for name, pids in self.groups.items()
        }
        now = all_processes()
        used = sum(now[p] - t for p, t in self.machine0.items() if p in now)
        out["machine"] = round(100 * used / wall, 1)
        # whatever else ran on the machine meanwhile (other users' tests, py-spy, the kernel's share is not here)
        mine = {p for pids in self.groups.values() for p in pids}
        others = sum(now[p] - t for p, t in self.machine0.items() if p in now and p not in mine)
        out["other"] = round(100 * others / wall, 1)
        return out
