"""Where a server's CPU goes under load: py-spy samples each worker during a step; Redis SLOWLOG, LATENCY and
command statistics say what Redis did meanwhile."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

PY_SPY = str(Path(sys.executable).parent / "py-spy")
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def start(pids: list[int], seconds: float, out_dir: Path, tag: str, rate: int = 200) -> list[subprocess.Popen[bytes]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in pids:
        argv = [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(out_dir / f"{tag}-{pid}.txt"),
            "--nonblocking",
        ]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    f = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in f:
            f = f.split(marker, 1)[1]
            break
    return f"{m.group('fn')} ({f})"


def summarize(files: list[Path], top: int = 20) -> dict[str, Any]:
    """Self and inclusive sample shares per function over the collapsed stacks py-spy wrote."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_short(f) for f in stack.split(";") if f.strip()]
            if not frames:
                continue
            self_c[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
            leaf_file = frames[-1].rsplit("(", 1)[-1].rstrip(")")
            by_file[leaf_file.split("/")[0] if "/" in leaf_file else leaf_file] += n
    if not total:
        return {"samples": 0}
    pct = lambda c: [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "self": pct(self_c), "inclusive": pct(incl), "self_by_package": pct(by_file)}


def redis_pids(r: Any) -> list[int]:
    """The process id of the Redis server, or of every node of a cluster (for the CPU accounting)."""
    from engine.redis import clients

    if clients.is_cluster(r):
        return [int(n.redis_connection.info("server")["process_id"]) for n in r.get_nodes()]
    return [int(r.info("server")["process_id"])]


def redis_view(r: Any, since: float) -> dict[str, Any]:
    """As ``shard_view``, for each primary of a cluster."""
    from engine.redis import clients

    if clients.is_cluster(r):
        return {"shards": {n.name: shard_view(n.redis_connection, since) for n in r.get_primaries()}}
    return shard_view(r, since)


def shard_view(r: Any, since: float) -> dict[str, Any]:
    """SLOWLOG entries since ``since`` (epoch s), the LATENCY monitor's latest spikes, and script stats."""
    slow = []
    for e in r.slowlog_get(128):
        if e.get("start_time", 0) >= since:
            cmd = e.get("command", b"")
            cmd = cmd.decode(errors="replace") if isinstance(cmd, bytes) else str(cmd)
            slow.append({"us": e.get("duration"), "command": cmd[:160]})
    try:
        latest = r.execute_command("LATENCY", "LATEST")
    except Exception as exc:  # noqa: BLE001 - report, never fail the run for a diagnostic
        latest = str(exc)
    cfg = r.config_get("latency-monitor-threshold")
    stats = {
        k: v
        for k, v in r.info("commandstats").items()
        if k
        in (
            "cmdstat_evalsha",
            "cmdstat_hget",
            "cmdstat_hgetall",
            "cmdstat_hexists",
            "cmdstat_xreadgroup",
            "cmdstat_xack",
        )
    }
    return {
        "slowlog": slow[:20],
        "slowlog_entries": len(slow),
        "slowlog_threshold_us": r.config_get("slowlog-log-slower-than"),
        "latency_monitor_threshold_ms": cfg,
        "latency_latest": latest,
        "commandstats": stats,
    }
