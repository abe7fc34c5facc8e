"""The report: ratios and goals, a table on the terminal, a JSON file per run, a PNG of latency vs rate."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import cache_report, cluster, results
from benchmarks.options import TARGETS, Options


def machine(r: Any) -> dict[str, Any]:
    """``r``: a client of the engine's Redis (closed here); on a cluster, one primary's settings are shown."""
    from engine.redis import clients

    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    out: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    node = r
    if clients.is_cluster(r):
        out["redis_cluster"] = {"nodes": len(r.get_nodes()), "primaries": len(r.get_primaries())}
        node = r.get_primaries()[0].redis_connection
    info = node.info("server")
    out["redis"] = {
        "version": info.get("redis_version"),
        "appendonly": node.config_get("appendonly").get("appendonly"),
        "appendfsync": node.config_get("appendfsync").get("appendfsync"),
    }
    r.close()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    out["git"] = head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    pg = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "root",
            "-d",
            "postgres",
            "-Atc",
            "select version(); show synchronous_commit; show max_connections",
        ],
        capture_output=True,
        text=True,
    )
    out["postgresql"] = pg.stdout.strip().splitlines() if pg.returncode == 0 else pg.stderr.strip()
    return out


def comparisons(report: dict[str, Any], slo: float) -> dict[str, Any]:
    runs = report["runs"]
    out: dict[str, Any] = {}
    for sc, eng in runs.get("engine", {}).items():
        out[sc] = {}
        for other in ("floor", "pgonly"):
            if sc in runs.get(other, {}):
                out[sc][f"engine/{other}"] = results.compare(eng, runs[other][sc], slo)
    for sc, c in cache_report.comparisons(runs, slo).items():
        out.setdefault(sc, {}).update(c)
    return out


def _p99_at_knee(steps: list[dict[str, Any]], slo: float) -> tuple[float | None, float | None]:
    k = results.knee(steps, slo)
    return (k["offered_rate"], k["all"].get("p99")) if k else (None, None)


def goals(report: dict[str, Any], slo: float) -> list[dict[str, Any]]:
    """The issue's targets, measured (never asserted)."""
    runs, comp, inv = report["runs"], report.get("comparisons", {}), report.get("invariants", {})
    if report.get("options", {}).get("quick"):
        return [{"goal": "none in --quick mode", "measured": "a smoke test: its figures mean nothing", "met": True}]
    out = []
    for sc, limit in (("search", 10.0), ("funnel", 25.0)):
        steps = runs.get("engine", {}).get(sc)
        if steps:
            ok_rates = [
                r["offered_rate"]
                for r in steps
                if r["all"].get("p99", 1e9) <= limit
                and r["achieved_rate"] >= 0.95 * r["offered_rate"]
                and r["error_rate"] <= 0.01
            ]
            out.append(
                {
                    "goal": f"{sc} p99 < {limit:g} ms at {steps[0]['connections']} clients",
                    "measured": f"met up to {max(ok_rates):.0f}/s" if ok_rates else "not met at any rate tried",
                    "met": bool(ok_rates),
                }
            )
    for sc, c in comp.items():
        ef = c.get("engine/floor", {})
        if ef.get("throughput_ratio") is not None:
            out.append(
                {
                    "goal": f"{sc}: engine throughput >= 0.5 x floor at the knee",
                    "measured": f"{ef['throughput_ratio']} ({ef['knee_rate_a']:.0f} vs {ef['knee_rate_b']:.0f}/s)",
                    "met": ef["throughput_ratio"] >= 0.5,
                }
            )
    out += cache_report.goals(report, slo)
    hot = comp.get("hotslot", {}).get("engine/pgonly", {})
    if hot:
        overlaps = sum(
            v.redis_overlaps + v.db_overlaps
            if hasattr(v, "redis_overlaps")
            else v.get("redis_overlaps", 0) + v.get("db_overlaps", 0)
            for t in inv.values()
            for k, v in t.items()
            if k == "hotslot"
        )
        ratio = hot.get("throughput_ratio")
        out.append(
            {
                "goal": "hotslot: engine >= 3 x comparator throughput, zero overlaps",
                "measured": f"{ratio} ({hot['knee_rate_a']:.0f} vs {hot['knee_rate_b']:.0f}/s), {overlaps} overlaps",
                "met": bool(ratio and ratio >= 3 and overlaps == 0),
            }
        )
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if v < 100 else f"{v:.0f}"
    return str(v)


def table(report: dict[str, Any], slo: float) -> str:
    lines = []
    if report.get("failed"):
        lines.append(f"THE SUITE DID NOT FINISH: {report['failed']}")
    head = (
        f"{'scenario':<8} {'target':<12} {'offered':>8} {'achieved':>8} {'p50':>7} {'p95':>7} {'p99':>7} "
        f"{'p99.9':>7} {'max':>7} {'err':>6} {'late':>6}  bound  cpu% (gen/server/redis/pg/persister/all)"
    )
    lines.append(head)
    lines.append("-" * len(head))
    for sc in report["options"]["scenarios"]:
        for target in (*TARGETS[:2], "cluster", *TARGETS[2:]):
            for r in report["runs"].get(target, {}).get(sc, []):
                a, c = r["all"], r.get("cpu_percent", {})
                cpu = "/".join(
                    _fmt(c.get(k)) for k in ("generator", "server", "redis", "postgres", "persister", "machine")
                )
                lines.append(
                    f"{sc:<8} {target:<12} {r['offered_rate']:>8.0f} {r['achieved_rate']:>8.0f} {_fmt(a.get('p50')):>7}"
                    f" {_fmt(a.get('p95')):>7} {_fmt(a.get('p99')):>7} {_fmt(a.get('p999')):>7} {_fmt(a.get('max')):>7}"
                    f" {sum(r['errors'].values()):>6} {r['late_queued'] + r['late_generator']:>6}"
                    f"  {'GEN' if r['generator_bound'] else '   '}    {cpu}"
                )
    lines.append(
        "(latencies in ms, from each request's scheduled start; late = started > late-ms after schedule; "
        "GEN = the generator, not the server, was the limit; cpu in % of one core, all = every core "
        "together, 200 = both saturated)"
    )
    lines += cluster.table_lines(report)
    lines.append("")
    lines.append(
        "per request type at each target's knee (highest rate sustained: >= 95% achieved, "
        f"<= 1% errors, p99 <= {slo:g} ms):"
    )
    for sc in report["options"]["scenarios"]:
        for target in (*TARGETS[:2], "cluster", *TARGETS[2:]):
            k = results.knee(report["runs"].get(target, {}).get(sc, []), slo)
            if not k:
                if sc in report["runs"].get(target, {}):
                    lines.append(f"  {sc:<8} {target:<12} no rate sustained")
                continue
            for kind, s in k["per_type"].items():
                codes = ", ".join(f"{code}: {n}" for code, n in sorted(s.get("codes", {}).items()))
                lines.append(
                    f"  {sc:<8} {target:<12} {k['offered_rate']:>6.0f}/s {kind:<8} n={s.get('count', 0):<7}"
                    f" p50 {_fmt(s.get('p50'))}  p99 {_fmt(s.get('p99'))}  p99.9 {_fmt(s.get('p999'))}"
                    f"  max {_fmt(s.get('max'))}  [{codes}]"
                )
    lines.append("")
    lines.append("ratios (a / b): throughput at the knee; p99 at the highest rate both sustained")
    for sc, c in report.get("comparisons", {}).items():
        for name, x in c.items():
            lines.append(
                f"  {sc:<8} {name:<20} throughput {_fmt(x.get('throughput_ratio'))}"
                f" ({_fmt(x.get('knee_rate_a'))} vs {_fmt(x.get('knee_rate_b'))}/s);"
                f" p99 {_fmt(x.get('p99_ratio'))} at {_fmt(x.get('p99_rate'))}/s"
                f" ({_fmt(x.get('p99_a'))} vs {_fmt(x.get('p99_b'))} ms)"
            )
    lines.append("")
    lines.append(
        "invariants (no overlapping bookings; every 201 stored; waitlist offers exclusive and fair; practice rules):"
    )
    for target, by_sc in report.get("invariants", {}).items():
        for sc, v in by_sc.items():
            v = msgspec.to_builtins(v) if not isinstance(v, dict) else v
            state = "skipped: " + v["skipped"] if v.get("skipped") else ("OK" if _ok(v) else "VIOLATED")
            lines.append(
                f"  {target:<12} {sc:<8} {state}: {v['checked_bookings']} bookings, overlaps redis/claims"
                f" {v['redis_overlaps']} db {v['db_overlaps']}, missing db {v['missing_in_db']}"
                f" redis {v['missing_in_redis']}, cancels not stored {v['cancel_not_stored']}"
                + (
                    f", waitlist offers {v['waitlist_offers']} ({v.get('waitlist_unverified', 0)} unverified)"
                    f" violating {v['waitlist_violations']}"
                    if v.get("waitlist_offers")
                    else ""
                )
                + (
                    f", practice rules: {v['rules_claims']} claims ({v.get('rules_room_claims', 0)} room claims),"
                    f" {v['rules_violations']} violations"
                    f" ({v.get('rules_note', '')})"
                    if sc == "rules"
                    else ""
                )
            )
            lines += [f"      {x}" for x in v.get("examples", [])[:5] if not _ok(v)]
    rl = report.get("redis_limits", {})
    if rl and "loop" in rl:
        lines.append("")
        lines.append("Lua scripts by EVALSHA (calls/s; Redis µs per call):")
        for mode in ("loop", "pipelined"):
            lines.append(
                f"  {mode:<9} "
                + ", ".join(
                    f"{k} {v['per_s']}/s ({_fmt(v.get('redis_usec_per_call'))} µs)" for k, v in rl[mode].items()
                )
            )
    ds = report.get("data_scale", {})
    if ds:
        lines.append("")
        lines.append(f"data scale: memory {ds.get('memory')}")
        for row in ds.get("sizes", []):
            h = row.get("http_search", {})
            lines.append(
                f"  {row['booked_in_store']:>9} booked: lua search p50 {row['lua_search']['p50_us']} µs"
                f" p99 {row['lua_search']['p99_us']} µs; http search p50 {_fmt(h.get('p50'))}"
                f" p99 {_fmt(h.get('p99'))} ms"
            )
    lines += cache_report.lines(report, slo)
    lines.append("")
    lines.append("goals (measured, not asserted):")
    for g in report.get("goals", []):
        lines.append(f"  [{'met' if g['met'] else 'not met'}] {g['goal']}: {g['measured']}")
    return "\n".join(lines)


def _ok(v: dict[str, Any]) -> bool:
    return not (
        v["redis_overlaps"]
        or v["db_overlaps"]
        or v["missing_in_db"]
        or v["missing_in_redis"]
        or v["cancel_not_stored"]
        or v.get("waitlist_violations", 0)
        or v.get("rules_violations", 0)
    )


def violations(report: dict[str, Any]) -> int:
    n = 0
    for by_sc in report.get("invariants", {}).values():
        for v in by_sc.values():
            d = msgspec.to_builtins(v) if not isinstance(v, dict) else v
            n += 0 if d.get("skipped") or _ok(d) else 1
    return n


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = report["options"]["scenarios"]
    cols = 2 if len(scenarios) > 1 else 1
    rows = (len(scenarios) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 4.5 * rows), squeeze=False)
    colors = {
        "engine": "tab:blue",
        "engine-cache": "tab:purple",
        "cluster": "tab:orange",
        "floor": "tab:green",
        "pgonly": "tab:red",
    }
    for ax, sc in zip(axes.flat, scenarios):
        for target, color in colors.items():
            steps = report["runs"].get(target, {}).get(sc, [])
            if not steps:
                continue
            x = [r["offered_rate"] for r in steps]
            for q, style in (("p50", ":"), ("p99", "-"), ("p999", "--")):
                y = [max(0.01, r["all"].get(q, 0) or 0.01) for r in steps]
                ax.plot(x, y, style, color=color, marker="o", markersize=3, label=f"{target} {q}")
        ax.set_yscale("log")
        ax.set_title(f"{sc}: latency vs offered rate ({report['options']['connections']} connections)")
        ax.set_xlabel("offered rate (requests/s)")
        ax.set_ylabel("latency (ms, from scheduled start)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=3)
    for ax in list(axes.flat)[len(scenarios) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: dict[str, Any], options: Options, out_json: Path) -> None:
    out_json.write_text(json.dumps(msgspec.to_builtins(report), indent=1, default=str))
