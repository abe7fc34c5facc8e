"""The limit under the HTTP stack: raw throughput of each Lua script, EVALSHA one call at a time on one
connection, and pipelined, with real KEYS/ARGV built by the engine's script layer (engine/scripts) on the seeded data.

Per script it also reports the microseconds Redis itself spent per call (INFO commandstats, evalsha), so
the report can say how far the HTTP path is from Redis. The calls are real operations: holds, bookings,
cancellations and releases land in the streams like any other and the persister stores them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec
import redis as redis_sync

from benchmarks.dataset import Dataset
from engine import ids, keys, scripts, timeutil
from engine.model import Ctx
from engine.scripts import Call, source

_enc = msgspec.json.Encoder()


def _ctx() -> Ctx:
    return Ctx(actor="admin", request_id=secrets.token_hex(16))


def _evalsha_stats(r: redis_sync.Redis) -> tuple[int, int]:
    s = r.info("commandstats").get("cmdstat_evalsha", {})
    return int(s.get("calls", 0)), int(s.get("usec", 0))


class ScriptBench:
    def __init__(self, redis_url: str, data: Dataset, log: Callable[[str], None] = print) -> None:
        self.r = redis_sync.Redis.from_url(redis_url)
        self.data, self.log = data, log
        self.sha = {n: self.r.script_load(source(n)) for n in ("hold", "book", "cancel", "release", "search")}

    def close(self) -> None:
        self.r.close()

    def _slots(self, n: int) -> list[tuple[str, str, str, int, int]]:
        """(practice, practitioner, visit type, start, end) of up to n offered starts, spread over practices."""
        out = []
        now = int(time.time()) + 3600
        hot = self.data.hot.practitioner_id if self.data.hot else ""
        for p in self.data.practices:
            for pr in p.practitioners:
                if pr == hot:
                    continue
                vt, minutes = p.visit_types[0]
                for s in self.r.zrangebyscore(keys.base(p.id, pr, vt), now, "+inf", start=0, num=max(1, n // 50)):
                    out.append((p.id, pr, vt, int(s), int(s) + minutes * 60))
                if len(out) >= n:
                    return out
        return out

    # ----------------------------------------------------------- calls, built by the engine's script layer
    def hold_call(self, pid: str, pr: str, vt: str, start: int, end: int) -> tuple[str, Call]:
        hid = ids.new_hold_id(pr)
        call = scripts.hold_call(
            now_ms=int(time.time() * 1000),
            practice_id=pid,
            practitioner_id=pr,
            visit_type_id=vt,
            hold_id=hid,
            start=start,
            end=end,
            ttl_ms=300_000,
            retention_ms=86_400_000,
            ctx=_ctx(),
        )
        return hid, call

    def book_call(self, hid: str) -> tuple[str, Call]:
        pid, pr = ids.practice_of(hid, "h") or "", ids.practitioner_of_hold(hid) or ""
        aid = ids.new_appointment_id(pid)
        call = scripts.book_call(
            now_ms=int(time.time() * 1000),
            practice_id=pid,
            practitioner_id=pr,
            hold_id=hid,
            appointment_id=aid,
            patient_json=_enc.encode({"name": "Bench Patient", "email": "bench@example.org"}),
            manage_hash=hashlib.sha256(aid.encode()).hexdigest(),
            patient_ref="bench-patient",
            ctx=_ctx(),
        )
        return aid, call

    def cancel_call(self, aid: str, pr: str) -> Call:
        return scripts.cancel_call(
            now_ms=int(time.time() * 1000),
            practice_id=aid.split(".", 1)[0],
            appointment_id=aid,
            practitioner_id=pr,
            reason="",
            ctx=_ctx(),
        )

    def release_call(self, hid: str) -> Call:
        pid, pr = ids.practice_of(hid, "h") or "", ids.practitioner_of_hold(hid) or ""
        return scripts.release_call(
            now_ms=int(time.time() * 1000), practice_id=pid, practitioner_id=pr, hold_id=hid, ctx=_ctx()
        )

    def search_call(self, i: int, days: int, audit: bool = True) -> Call:
        p = self.data.practices[i % len(self.data.practices)]
        vt, minutes = p.visit_types[i % len(p.visit_types)]
        tz = timeutil.zone(p.timezone)
        first = dt.date.fromisoformat(self.data.first_date) + dt.timedelta(days=i % 20)
        return scripts.search_call(
            now_ms=int(time.time() * 1000),
            practice_id=p.id,
            practitioner_ids=sorted(p.practitioners),
            visit_type_id=vt,
            start=timeutil.day_bounds(first, tz)[0],
            end=timeutil.day_bounds(first + dt.timedelta(days=days - 1), tz)[1],
            duration_s=minutes * 60,
            detail={"date": first.isoformat(), "days": days, "visit_type_id": vt, "practitioner_id": None},
            audit=audit,
            ctx=_ctx(),
        )

    # ----------------------------------------------------------- runners
    def _run(self, name: str, calls: list[Call], pipelined: bool) -> tuple[dict[str, Any], list[Any]]:
        sha = self.sha[name]
        c0, u0 = _evalsha_stats(self.r)
        t0 = time.perf_counter()
        if pipelined:
            results: list[Any] = []
            for i in range(0, len(calls), 200):
                pipe = self.r.pipeline(transaction=False)
                for c in calls[i : i + 200]:
                    pipe.evalsha(sha, len(c.keys), *c.keys, *c.args)
                results += pipe.execute()
        else:
            results = [self.r.evalsha(sha, len(c.keys), *c.keys, *c.args) for c in calls]
        wall = time.perf_counter() - t0
        c1, u1 = _evalsha_stats(self.r)
        per_call = (u1 - u0) / (c1 - c0) if c1 > c0 else None
        return {
            "calls": len(calls),
            "per_s": round(len(calls) / wall) if wall else 0,
            "redis_usec_per_call": round(per_call, 1) if per_call else None,
        }, results

    def run(self, n: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        slots = self._slots(4 * n)
        if len(slots) < 4:
            return {"skipped": "no offered slots found"}
        for mode, pipelined in (("loop", False), ("pipelined", True)):
            use = slots[:n] if mode == "loop" else slots[n : 2 * n] or slots[:n]
            res: dict[str, Any] = {}
            for days in (1, 7):
                res[f"search_{days}d"], _ = self._run(
                    "search", [self.search_call(i, days) for i in range(n)], pipelined
                )
            # the same 1-day searches without the audit event (BOOKING_AUDIT_SEARCHES=0): what the XADD costs
            res["search_1d_noaudit"], _ = self._run(
                "search", [self.search_call(i, 1, audit=False) for i in range(n)], pipelined
            )
            hold_ids, calls = zip(*(self.hold_call(*s) for s in use))
            res["hold"], answers = self._run("hold", list(calls), pipelined)
            held = [h for h, a in zip(hold_ids, answers) if a[0] in (b"OK", "OK")]
            res["hold"]["ok"] = len(held)
            booked = [self.book_call(h) for h in held[: len(held) // 2]]
            if booked:
                res["book"], _ = self._run("book", [c for _, c in booked], pipelined)
                prac = {aid: ids.practitioner_of_hold(h) or "" for (aid, _), h in zip(booked, held)}
                res["cancel"], _ = self._run("cancel", [self.cancel_call(a, prac[a]) for a, _ in booked], pipelined)
            rest = held[len(held) // 2 :]
            if rest:
                res["release"], _ = self._run("release", [self.release_call(h) for h in rest], pipelined)
            out[mode] = res
            self.log(f"    lua {mode}: " + ", ".join(f"{k} {v['per_s']}/s" for k, v in res.items()))
        return out


def run(redis_url: str, data: Dataset, n: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    b = ScriptBench(redis_url, data, log)
    try:
        return b.run(n)
    finally:
        b.close()
