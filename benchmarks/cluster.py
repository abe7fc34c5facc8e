"""`booking bench --cluster`: the engine's scenarios once more on a local Redis Cluster the run starts itself
(api/devcluster.py: 3 primaries, 3 replicas, AOF always), with each redis-server's CPU from /proc, the hold and
search scripts driven on each primary directly (as benchmarks/redis_limits.py does on the single Redis of the
same run), and what the replica confirmation (`WAIT 1`, engine/scripts/registry.py) adds to a booking."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from redis.crc import key_slot

from benchmarks.dataset import Dataset
from benchmarks.redis_limits import ScriptBench
from engine import keys


def node_groups(r: Any) -> dict[str, list[int]]:
    """One CPU group per node of the cluster: 'redis <port> primary|replica' -> [its pid]."""
    out = {}
    for n in r.get_nodes():
        c = n.redis_connection
        role = "primary" if c.info("replication")["role"] == "master" else "replica"
        out[f"redis {n.port} {role}"] = [int(c.info("server")["process_id"])]
    return out


def shard_data(r: Any, data: Dataset) -> dict[int, Dataset]:
    """The seeded practices of each primary (by port)."""
    by_port: dict[int, list[Any]] = {}
    for p in data.practices:
        node = r.nodes_manager.get_node_from_slot(key_slot(keys.tag(p.id).encode()))
        by_port.setdefault(node.port, []).append(p)
    return {
        port: Dataset(practices=ps, first_date=data.first_date, search_days=data.search_days, hot=data.hot)
        for port, ps in sorted(by_port.items())
    }


def _pcts(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "calls": len(s),
        "p50_us": round(1e6 * statistics.median(s), 1),
        "p99_us": round(1e6 * s[int(0.99 * (len(s) - 1))], 1),
        "mean_us": round(1e6 * statistics.fmean(s), 1),
    }


def wait_cost(bench: ScriptBench, n: int, wait_ms: int = 500) -> dict[str, Any]:
    """Bookings one at a time on one connection of a primary: EVALSHA alone, and EVALSHA + `WAIT 1` in one
    round trip as the engine sends them; the difference is what the replica's acknowledgement costs."""
    slots = bench._slots(2 * n)
    held = []
    for s in slots:
        hid, call = bench.hold_call(*s)
        if bench.r.evalsha(bench.sha["hold"], len(call.keys), *call.keys, *call.args)[0] in (b"OK", "OK"):
            held.append(hid)
    out: dict[str, Any] = {}
    half = len(held) // 2
    for mode, hold_ids in (("evalsha", held[:half]), ("evalsha_wait1", held[half:])):
        times, unconfirmed = [], 0
        for hid in hold_ids:
            _, call = bench.book_call(hid)
            t = time.perf_counter()
            if mode == "evalsha":
                bench.r.evalsha(bench.sha["book"], len(call.keys), *call.keys, *call.args)
            else:
                pipe = bench.r.pipeline(transaction=False)
                pipe.evalsha(bench.sha["book"], len(call.keys), *call.keys, *call.args)
                pipe.execute_command("WAIT", 1, wait_ms)
                unconfirmed += int(pipe.execute()[1]) < 1
            times.append(time.perf_counter() - t)
        out[mode] = _pcts(times) if times else {"calls": 0}
        if mode == "evalsha_wait1":
            out[mode]["unconfirmed"] = unconfirmed
    return out


def script_limits(r: Any, data: Dataset, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    """redis_limits on each primary with its own practices, one shard after the other, and the WAIT cost on one."""
    shards: dict[str, Any] = {}
    wait: dict[str, Any] | None = None
    for port, sd in shard_data(r, data).items():
        log(f"   shard 127.0.0.1:{port}: {len(sd.practices)} practices")
        b = ScriptBench(f"redis://127.0.0.1:{port}/0", sd, log)
        try:
            shards[str(port)] = {"practices": len(sd.practices), **b.run(n)}
            if wait is None:
                wait = wait_cost(b, max(50, n // 5))
                log(f"    book alone and with WAIT 1 on one connection: {wait}")
        finally:
            b.close()
    summary: dict[str, Any] = {}
    for mode in ("loop", "pipelined"):
        for script in ("hold", "search_1d", "search_7d"):
            rates = [s[mode][script]["per_s"] for s in shards.values() if mode in s and script in s[mode]]
            if rates:
                summary[f"{script}_{mode}"] = {
                    "per_shard_per_s": rates,
                    "mean_per_shard_per_s": round(statistics.fmean(rates)),
                    "x_shards_per_s": round(statistics.fmean(rates) * len(rates)),
                }
    return {"shards": shards, "summary": summary, "wait_cost": wait}


def compare(single: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """Per-shard script throughput against the single Redis of the same run (both driven one shard at a time)."""
    out = {}
    for key, s in cluster.get("summary", {}).items():
        script, _, mode = key.rpartition("_")
        one = single.get(mode, {}).get(script, {}).get("per_s")
        if one:
            out[key] = {
                "single_per_s": one,
                "shard_mean_per_s": s["mean_per_shard_per_s"],
                "shard_over_single": round(s["mean_per_shard_per_s"] / one, 2),
                "projected_x_shards_per_s": s["x_shards_per_s"],
            }
    return out


def new_cluster(base_start: int = 23001) -> Any:
    from api.devcluster import DevCluster, free_base_port

    return DevCluster(free_base_port(start=base_start, stop=29000)).start()


def table_lines(report: dict[str, Any]) -> list[str]:
    """What the terminal table says about the cluster run: node CPU at each step, scripts per shard vs single."""
    lines: list[str] = []
    for sc, steps in report.get("runs", {}).get("cluster", {}).items():
        for r in steps:
            nodes = {k.split(" ", 1)[1]: v for k, v in r.get("cpu_percent", {}).items() if k.startswith("redis ")}
            lines.append(f"  cluster {sc:<8} {r['offered_rate']:>6.0f}/s  cpu% per node: {nodes}")
    lim = report.get("cluster_limits", {})
    for key, c in lim.get("vs_single", {}).items():
        lines.append(
            f"  {key:<20} single Redis {c['single_per_s']:>7}/s  one shard {c['shard_mean_per_s']:>7}/s"
            f" ({c['shard_over_single']}x)  x {len(lim.get('shards', {}))} shards = {c['projected_x_shards_per_s']}/s"
        )
    if lim.get("wait_cost"):
        lines.append(f"  book on one connection, alone and with WAIT 1: {lim['wait_cost']}")
    return ["", "Redis Cluster (booking bench --cluster):", *lines] if lines else []
