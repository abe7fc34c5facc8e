"""Merging the generator processes' answers into one step result, and what a sweep of steps says (knee,
ratios)."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from benchmarks.loadgen import Step, new_histogram

PCTS = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p999", 99.9))


def _stats(h: HdrHistogram) -> dict[str, float]:
    if h.get_total_count() == 0:
        return {"count": 0}
    out: dict[str, float] = {"count": h.get_total_count()}
    for name, q in PCTS:
        out[name] = round(h.get_value_at_percentile(q) / 1000, 2)
    out["max"] = round(h.get_max_value() / 1000, 2)
    out["mean"] = round(h.get_mean_value() / 1000, 2)
    return out


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def merge(target: str, step: Step, parts: list[dict[str, Any]], ceiling: float | None) -> dict[str, Any]:
    failed = [p["failed"] for p in parts if "failed" in p]
    if failed:
        raise RuntimeError(f"a generator process failed: {failed[0]}")
    hists: dict[str, HdrHistogram] = {}
    total, lag = new_histogram(), new_histogram()
    codes: dict[str, dict[str, int]] = {}
    errors: dict[str, int] = {}
    refused: dict[str, int] = {}
    for p in parts:
        for kind, enc in p["hist"].items():
            h = HdrHistogram.decode(enc)
            hists.setdefault(kind, new_histogram()).add(h)
            total.add(h)
        lag.add(HdrHistogram.decode(p["gen_lag"]))
        for kind, c in p["codes"].items():
            _add(codes.setdefault(kind, {}), c)
        _add(errors, p["errors"])
        _add(refused, p["refused"])
    n = lambda key: sum(int(p[key]) for p in parts)  # noqa: E731
    in_window = n("in_window")
    n_errors = sum(errors.values())
    lag_p99 = lag.get_value_at_percentile(99) / 1000 if lag.get_total_count() else 0.0
    late_gen = n("late_generator")
    gen_cpu = sum(p["cpu_s"] for p in parts) / max(1e-6, max(p["wall_s"] for p in parts))
    reasons = []
    if in_window and late_gen / in_window > 0.05:
        reasons.append(f"{late_gen} requests started late with a connection free")
    if lag_p99 > step.late_ms:
        reasons.append(f"generator lag p99 {lag_p99:.1f} ms")
    if ceiling and step.rate > 0.8 * ceiling:
        reasons.append(f"offered rate above 80% of the generator's ceiling ({ceiling:.0f}/s)")
    return {
        "target": target,
        "scenario": step.scenario,
        "offered_rate": step.rate,
        "achieved_rate": round(n("done_in_window") / step.duration, 1),
        "duration_s": step.duration,
        "connections": step.connections,
        "requests": in_window,
        "all": _stats(total),
        "per_type": {k: {**_stats(h), "codes": codes.get(k, {})} for k, h in sorted(hists.items())},
        "errors": dict(sorted(errors.items())),
        "error_rate": round(n_errors / in_window, 4) if in_window else 0.0,
        "refused": dict(sorted(refused.items())),
        "late_queued": n("late_queued"),
        "late_generator": late_gen,
        "generator_lag_p99_ms": round(lag_p99, 2),
        "generator_cpu_cores": round(gen_cpu, 2),
        "generator_bound": bool(reasons),
        "generator_bound_why": reasons,
        "not_answered": n("not_answered"),
        "reconnects": n("reconnects"),
        "connect_errors": n("connect_errors"),
    }


def sustained(r: dict[str, Any], slo_p99_ms: float) -> bool:
    """The server kept up: it answered (almost) all it was offered, within the p99 objective, with few errors."""
    p99 = r["all"].get("p99", float("inf"))
    return r["achieved_rate"] >= 0.95 * r["offered_rate"] and r["error_rate"] <= 0.01 and p99 <= slo_p99_ms


def saturated(r: dict[str, Any]) -> bool:
    """Far past the knee: stop the sweep (more load only builds queues)."""
    return r["achieved_rate"] < 0.8 * r["offered_rate"] or r["all"].get("p99", 0) > 2000 or r["error_rate"] > 0.2


def knee(steps: list[dict[str, Any]], slo_p99_ms: float) -> dict[str, Any] | None:
    """The step with the highest rate that was sustained (the throughput at the knee)."""
    ok = [r for r in steps if sustained(r, slo_p99_ms)]
    return max(ok, key=lambda r: r["offered_rate"]) if ok else None


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]], slo_p99_ms: float) -> dict[str, Any]:
    """Ratios a / b: throughput at the knee, and p99 at the highest rate both sustained (else the lowest
    rate both ran)."""
    ka, kb = knee(a, slo_p99_ms), knee(b, slo_p99_ms)
    out: dict[str, Any] = {
        "knee_rate_a": ka["achieved_rate"] if ka else 0.0,
        "knee_rate_b": kb["achieved_rate"] if kb else 0.0,
    }
    out["throughput_ratio"] = round(out["knee_rate_a"] / out["knee_rate_b"], 2) if out["knee_rate_b"] else None
    by_rate_a = {r["offered_rate"]: r for r in a}
    by_rate_b = {r["offered_rate"]: r for r in b}
    common = sorted(set(by_rate_a) & set(by_rate_b))
    both = [x for x in common if sustained(by_rate_a[x], slo_p99_ms) and sustained(by_rate_b[x], slo_p99_ms)]
    rate = max(both) if both else (min(common) if common else None)
    if rate is not None:
        pa, pb = by_rate_a[rate]["all"].get("p99"), by_rate_b[rate]["all"].get("p99")
        out.update(p99_rate=rate, p99_a=pa, p99_b=pb, p99_ratio=round(pa / pb, 2) if pa and pb else None)
    return out
