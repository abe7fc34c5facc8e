"""The availability cache in the report: the engine with the cache off (`engine`) and on (`engine-cache`) side by
side, CPU per request, the few-clients step, the in-process CPU per search, the outage scenario, and issue 13's
targets (measured, never asserted)."""

from __future__ import annotations

from typing import Any

from benchmarks import results

OFF, ON = "engine", "engine-cache"


def _per_request_us(step: dict[str, Any], part: str) -> float | None:
    """CPU of one component per answered request, in µs (its % of one core over the achieved rate)."""
    pct, rate = step.get("cpu_percent", {}).get(part), step.get("achieved_rate")
    if pct is None or not rate:
        return None
    return round(pct * 10_000 / rate)


def comparisons(runs: dict[str, Any], slo: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sc, steps in runs.get(ON, {}).items():
        for other in (OFF, "floor", "pgonly"):
            if sc in runs.get(other, {}):
                out.setdefault(sc, {})[f"{ON}/{other}"] = results.compare(steps, runs[other][sc], slo)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if isinstance(v, float) and v < 100 else f"{v:.0f}" if isinstance(v, float) else str(v)


def lines(report: dict[str, Any], slo: float) -> list[str]:
    runs = report.get("runs", {})
    out: list[str] = []
    for sc in report["options"]["scenarios"]:
        off, on = runs.get(OFF, {}).get(sc, []), runs.get(ON, {}).get(sc, [])
        if not (off and on):
            continue
        out += ["", f"{sc}: the cache off ({OFF}) and on ({ON}), same run (ms; CPU µs per request: API workers/Redis)"]
        out.append(f"  {'offered':>8}  {'off: achieved p50 p99  cpu':<34}  {'on: achieved p50 p99  cpu':<34}")
        by_rate = {r["offered_rate"]: r for r in on}
        for a in off:
            b = by_rate.get(a["offered_rate"])
            cells = []
            for r in (a, b):
                if r is None:
                    cells.append("-")
                    continue
                cpu = f"{_fmt(_per_request_us(r, 'server'))}/{_fmt(_per_request_us(r, 'redis'))}"
                err = sum(r["errors"].values())
                cells.append(
                    f"{r['achieved_rate']:>6.0f} {_fmt(r['all'].get('p50')):>6} {_fmt(r['all'].get('p99')):>7}"
                    f"  {cpu:<9}{'  err ' + str(err) if err else ''}"
                )
            out.append(f"  {a['offered_rate']:>8.0f}  {cells[0]:<34}  {cells[1]:<34}")
        for r in on:
            if r["offered_rate"] not in {x["offered_rate"] for x in off}:
                out.append(f"  {r['offered_rate']:>8.0f}  {'-':<34}  {r['achieved_rate']:>6.0f} ...")
        knees = [results.knee(s, slo) for s in (off, on)]
        out.append(
            "  knee: off "
            + " / on ".join(
                f"{k['offered_rate']:.0f}/s (p99 {_fmt(k['all'].get('p99'))})" if k else "none" for k in knees
            )
        )
    few = report.get("few_clients", {})
    if few:
        out += ["", "search with few connections (open loop):"]
        for target, r in few.items():
            a = r["all"]
            out.append(
                f"  {target:<12} {r['offered_rate']:.0f}/s on {r['connections']} connections: p50 {_fmt(a.get('p50'))}"
                f" p99 {_fmt(a.get('p99'))} p99.9 {_fmt(a.get('p999'))} ms, CPU µs per request"
                f" {_fmt(_per_request_us(r, 'server'))}/{_fmt(_per_request_us(r, 'redis'))}"
            )
    cpu = report.get("search_cpu")
    if cpu:
        out += ["", "CPU per search in process (benchmarks/search_cpu.py; µs API / Redis / wall):"]
        for name in ("same 1-day search", "bench mix"):
            cells = [
                f"{m} {cpu[m][name]['api_cpu_us']}/{cpu[m][name]['redis_cpu_us']}/{cpu[m][name]['wall_us']}"
                for m in ("off", "on")
            ]
            out.append(f"  {name:<18} cache " + ", cache ".join(cells))
    og = report.get("outage")
    if og:
        out += [
            "",
            f"outage: redis-server stopped {og['outage_s']:.0f}s during a search sweep ({og['rate_per_target']:.0f}/s"
            " per target); per phase: answers by status, stale, max Age, p50/p99 ms",
        ]
        for k, v in og["phases"].items():
            out.append(
                f"  {k:<32} {v['statuses']} stale {v['stale']} max Age {v['max_age_s']}s"
                f" p50 {_fmt(v['p50_ms'])} p99 {_fmt(v['p99_ms'])}"
            )
        out.append(f"  after Redis was back: {og['after']}")
    return out


def goals(report: dict[str, Any], slo: float) -> list[dict[str, Any]]:
    runs, out = report.get("runs", {}), []
    few = report.get("few_clients", {}).get(ON)
    if few:
        p99 = few["all"].get("p99")
        out.append(
            {
                "goal": f"search p99 <= 5 ms at {few['connections']} clients ({ON})",
                "measured": f"{_fmt(p99)} ms at {few['offered_rate']:.0f}/s",
                "met": p99 is not None and p99 <= 5,
            }
        )
    on, off = runs.get(ON, {}).get("search", []), runs.get(OFF, {}).get("search", [])
    k_on, k_off = results.knee(on, slo), results.knee(off, slo)
    if on:
        upto = [r for r in on if k_on and r["offered_rate"] <= k_on["offered_rate"]]
        worst = max((r["all"].get("p99") or 0 for r in upto), default=None)
        out.append(
            {
                "goal": f"search p99 <= 25 ms at {on[0]['connections']} connections up to the knee ({ON})",
                "measured": f"worst p99 {_fmt(worst)} ms up to {k_on['offered_rate']:.0f}/s"
                if k_on
                else "no rate sustained",
                "met": bool(k_on) and worst is not None and worst <= 25,
            }
        )
    floor = results.knee(runs.get("floor", {}).get("search", []), slo)
    if k_on and floor:
        ratio = round(k_on["offered_rate"] / floor["offered_rate"], 2)
        out.append(
            {
                "goal": "search knee >= 0.5 x the floor's",
                "met": ratio >= 0.5,
                "measured": f"{ratio} ({k_on['offered_rate']:.0f} vs {floor['offered_rate']:.0f}/s)",
            }
        )
    if k_on and k_off:
        ratio = round(k_on["offered_rate"] / k_off["offered_rate"], 2)
        out.append(
            {
                "goal": "search knee >= 3 x the uncached engine's (same run)",
                "met": ratio >= 3,
                "measured": f"{ratio} ({k_on['offered_rate']:.0f} vs {k_off['offered_rate']:.0f}/s)",
            }
        )
    og = report.get("outage")
    if og:
        during = og["phases"].get(f"during/{ON} search", {})
        ok = during.get("statuses", {}).get("200", 0)
        out.append(
            {
                "goal": "Redis stopped: cached days keep answering 200 (stale); 0 wrong answers after",
                "measured": f"{ok} of {during.get('count', 0)} answered 200 ({during.get('stale', 0)} stale) while"
                f" it was down; {og['after']['wrong']} wrong of {og['after']['compared']} after",
                "met": ok > 0 and ok == during.get("count") and og["after"]["wrong"] == 0,
            }
        )
    return out
