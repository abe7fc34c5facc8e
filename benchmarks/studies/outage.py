"""The outage study: a search sweep through a Redis that is stopped for ``outage_seconds`` and started again. Not in
the default run: ``booking bench --preset outage`` (or ``--scenarios search,outage``; ``--set outage_seconds=30
--set outage_rate=100``).

Conclusion (2026-12-03, 100 searches/s per target, Redis stopped 30 s): with the availability cache on, every
search during the outage was answered 200 from the last known availability (``stale``, max ``Age`` 35 s); with it
off every one was 503; holds were 503 with ``Retry-After`` on both; after Redis came back from its AOF, 0 of 60
answers differed between the two targets and none was still stale (figures:
benchmarks/results/2026-11-25_to_12-03-notebook.md; tests/integration keep the behaviour, without timing).

The scenario runs on a redis-server of its own (a free port, AOF on in the run's folder, so that the restarted
server comes back with its data), stopped with SIGTERM and started again by process id, never by name. Both
engine targets serve it at once (`booking serve`, same workers as the sweeps, each on its own fresh database):
`engine` with the availability cache off and `engine-cache` with it on. A fixed set of searches (practice, visit
type, date, days) is read once on each, then the sweep sends them at ``--outage-rate`` per second to each
target (open loop, httpx), with one hold attempt a second, through three phases: before, during and after the
outage. Reported per phase and target: answers by status, how many were marked stale, the largest `Age`, p50 and
p99 latency, and the holds' answers (503 with Retry-After expected while Redis is down).

After Redis is back, the holds of the sweep are released, a few new ones are placed, and every search of the set
is asked of both targets: an answer of the cached target that differs from the uncached one (or is still stale)
is a wrong answer. Nothing here is asserted: the figures go into the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks import targets
from benchmarks.dataset import Dataset

PHASES = ("before", "during", "after")


class OwnRedis:
    """A redis-server of the scenario's own, with AOF, stopped and started again by its process id."""

    def __init__(self, folder: Path) -> None:
        self.port = targets.free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(self.folder),
            "--logfile",
            str(self.folder / "redis.log"),
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        r = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        for _ in range(200):
            with contextlib.suppress(redis.exceptions.RedisError):
                if r.ping():
                    r.close()
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start; see {self.folder / 'redis.log'}")

    def stop(self) -> None:
        """SIGTERM (Redis writes its AOF and exits), SIGKILL if it does not within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _queries(data: Dataset, n: int, rng: random.Random) -> list[str]:
    import datetime as dt

    first = dt.date.fromisoformat(data.first_date)
    out = set()
    while len(out) < n:
        p = rng.choice(data.practices)
        vt = rng.choice(p.visit_types)[0]
        day = first + dt.timedelta(days=rng.randrange(data.search_days))
        out.add(f"/v1/practices/{p.id}/availability?date={day}&visit_type_id={vt}&days={rng.choice((1, 1, 2, 3))}")
    return sorted(out)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


class Tally:
    def __init__(self) -> None:
        self.by: dict[str, dict[str, Any]] = {}

    def add(self, phase: str, kind: str, status: int, ms: float, stale: bool = False, age: int | None = None) -> None:
        t = self.by.setdefault(f"{phase}/{kind}", {"statuses": {}, "stale": 0, "max_age_s": 0, "ms": []})
        t["statuses"][str(status)] = t["statuses"].get(str(status), 0) + 1
        t["stale"] += stale
        if age is not None:
            t["max_age_s"] = max(t["max_age_s"], age)
        t["ms"].append(ms)

    def summary(self) -> dict[str, Any]:
        out = {}
        for k, t in sorted(self.by.items()):
            ms = t.pop("ms")
            out[k] = {**t, "count": len(ms), "p50_ms": _pct(ms, 0.5), "p99_ms": _pct(ms, 0.99)}
        return out


async def _sweep(
    urls: dict[str, str],
    queries: list[str],
    holds: list[dict[str, Any]],
    redis: OwnRedis,
    rate: float,
    outage_s: float,
    log: Any,
) -> tuple[Tally, list[str]]:
    tally, held = Tally(), []
    auth = {"Authorization": f"Bearer {targets.ADMIN_TOKEN}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    clients = {t: httpx.AsyncClient(base_url=u, headers=auth, timeout=10, limits=limits) for t, u in urls.items()}
    phase = {"now": "before"}
    tasks: set[asyncio.Task[None]] = set()
    rng = random.Random(13)

    async def search(target: str, path: str) -> None:
        ph, t0 = phase["now"], time.perf_counter()
        try:
            r = await clients[target].get(path)
            stale = r.status_code == 200 and r.json().get("stale") is True
            age = int(r.headers["Age"]) if "Age" in r.headers else None
            tally.add(ph, f"{target} search", r.status_code, (time.perf_counter() - t0) * 1000, stale, age)
        except httpx.HTTPError:
            tally.add(ph, f"{target} search", 0, (time.perf_counter() - t0) * 1000)

    async def hold(target: str, body: dict[str, Any]) -> None:
        ph, t0 = phase["now"], time.perf_counter()
        try:
            r = await clients[target].post("/v1/holds", json=body)
            kind = f"{target} hold" + (" (Retry-After)" if r.status_code == 503 and "Retry-After" in r.headers else "")
            tally.add(ph, kind, r.status_code, (time.perf_counter() - t0) * 1000)
            if r.status_code == 201:
                held.append(r.json()["id"])
        except httpx.HTTPError:
            tally.add(ph, f"{target} hold", 0, (time.perf_counter() - t0) * 1000)

    def fire(coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop = asyncio.get_running_loop()
    began = loop.time()
    settle = min(10.0, max(2.0, outage_s))  # the sweep's first and last phases
    stop_at, back_at, end_at = settle, settle + outage_s, 2 * settle + outage_s
    tick, n = 1.0 / rate, 0
    last_hold = -1
    while True:
        elapsed = loop.time() - began
        if phase["now"] == "before" and elapsed >= stop_at:
            log(f"   outage: stopping redis-server (pid {redis.proc.pid if redis.proc else '-'}) for {outage_s:.0f}s")
            await asyncio.to_thread(redis.stop)
            phase["now"] = "during"
        elif phase["now"] == "during" and elapsed >= back_at:
            await asyncio.to_thread(redis.start)
            log(f"   outage: redis-server started again (pid {redis.proc.pid if redis.proc else '-'})")
            phase["now"] = "after"
        elif elapsed >= end_at:
            break
        for target in clients:
            fire(search(target, queries[n % len(queries)]))
        if int(elapsed) != last_hold and holds:
            last_hold = int(elapsed)
            for target in clients:
                fire(hold(target, rng.choice(holds)))
        n += 1
        await asyncio.sleep(max(0.0, began + n * tick - loop.time()))
    if tasks:
        await asyncio.wait(tasks, timeout=15)
    for c in clients.values():
        await c.aclose()
    return tally, held


async def _compare(urls: dict[str, str], queries: list[str], held: list[str], holds: list[dict[str, Any]]) -> Any:
    """After Redis is back: release the sweep's holds, place a few new ones, then ask every search of both."""
    auth = {"Authorization": f"Bearer {targets.ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=urls["engine"], headers=auth, timeout=10) as c:
        for h in held:
            await c.delete(f"/v1/holds/{h}")
        placed = sum([(await c.post("/v1/holds", json=b)).status_code == 201 for b in holds[:5]])
    bodies: dict[str, list[Any]] = {}
    for target, url in urls.items():
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=10) as c:
            bodies[target] = [(r.status_code, r.content) for r in [await c.get(q) for q in queries]]
    wrong = [q for q, a, b in zip(queries, bodies["engine-cache"], bodies["engine"]) if a != b or a[0] != 200]
    stale = sum(msgspec.json.decode(b).get("stale") is True for s, b in bodies["engine-cache"] if s == 200)
    return {
        "compared": len(queries),
        "wrong": len(wrong),
        "still_stale": stale,
        "holds_placed_after": placed,
        "holds_released_after": len(held),
        "examples": wrong[:3],
    }


def _holdable(url: str, queries: list[str]) -> list[dict[str, Any]]:
    """Hold bodies for a few slots the searches offer (each tried once a second during the sweep)."""
    out: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {targets.ADMIN_TOKEN}"}) as c:
        for q in queries[:20]:
            slots = c.get(q).json().get("slots", [])
            vt = q.split("visit_type_id=")[1].split("&")[0]
            out += [
                {"practitioner_id": s["practitioner_id"], "visit_type_id": vt, "start": s["start"]} for s in slots[:2]
            ]
    return out


def run(bench: Any, asked: list[str], log: Any) -> dict[str, Any]:
    """``bench``: the runner (options, folders, databases); ``asked``: the engine targets of this run."""
    o = bench.o
    own = OwnRedis(bench.out_dir / "outage-redis")
    own.start()
    servers = []
    try:
        urls = {}
        db_url = bench._recreate_db(f"{o.db_prefix}_outage")
        for target in ("engine-cache", "engine"):  # both: the uncached one is what the cached one is checked by
            env = targets.engine_env(
                {"REDIS_URL": own.url},
                db_url,
                {
                    "SEARCH_CACHE_BYTES": str(o.cache_bytes if target == "engine-cache" else 0),
                    "STALE_READ_SECONDS": "60",
                },
            )
            targets.migrate(env, bench.logs)
            srv = targets.start_engine(env, o.workers, bench.logs, o.server, f"outage-{target}")
            servers.append(srv)
            srv.wait_ready()
            urls[target] = srv.url
        log(
            f"== outage: search sweep at {o.outage_rate:.0f}/s per target, redis-server stopped {o.outage_seconds:.0f}s"
        )
        data = bench._seed_with(urls["engine-cache"], practices=min(o.practices, 20))
        queries = _queries(data, 60, random.Random(5))
        for url in urls.values():  # every day of the set read once, on each target
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {targets.ADMIN_TOKEN}"}) as c:
                for q in queries:
                    c.get(q)
        holds = _holdable(urls["engine"], queries)
        tally, held = asyncio.run(_sweep(urls, queries, holds, own, o.outage_rate, o.outage_seconds, log))
        check = asyncio.run(_compare(urls, queries, held, holds))
        out = {
            "outage_s": o.outage_seconds,
            "rate_per_target": o.outage_rate,
            "queries": len(queries),
            "phases": tally.summary(),
            "after": check,
            "asked": asked,
        }
        log(f"   outage: {msgspec.json.encode(out['phases']).decode()[:600]}")
        log(f"   outage, after it was back: {check}")
        return out
    finally:
        for s in servers:
            s.stop()
        own.stop()
