"""One invocation: the generator's ceiling, then each target (started, seeded, swept, checked, stopped)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import create_engine, text

from benchmarks import (
    ceiling,
    cluster,
    cpu,
    data_scale,
    invariants,
    profile,
    redis_limits,
    results,
    rules,
    search_cpu,
    targets,
)
from benchmarks.dataset import Dataset, HotSpot, PracticeData
from benchmarks.loadgen import GeneratorPool, Step
from benchmarks.options import ENGINES, Options
from benchmarks.scenarios import ENGINE_ONLY, SWEPT
from benchmarks.seed import seed
from benchmarks.studies import outage
from benchmarks.waitlist import check_offers, waitlist_practices


def log(msg: str) -> None:
    print(msg, flush=True)


class Bench:
    def __init__(self, opts: Options, out_dir: Path) -> None:
        self.o, self.out_dir = opts, out_dir
        self.logs = out_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.report: dict[str, Any] = {"runs": {}, "invariants": {}, "profile": {}}
        self.ceiling: float | None = None
        self.started: list[targets.Server] = []
        self._rules_note = ""

    # ------------------------------------------------------------ plumbing
    def _seed(self, url: str) -> Dataset:
        """The same data set, through the HTTP API of whichever target serves ``url`` (engine or comparator)."""
        return self._seed_with(url, self.o.practices)

    def _seed_with(self, url: str, practices: int) -> Dataset:
        o = self.o
        log(f"   seeding {practices} practices x {o.practitioners} practitioners, {o.horizon} days")
        return seed(
            url,
            self.o.admin_token,
            practices=practices,
            practitioners=o.practitioners,
            horizon=o.horizon,
            prebook=o.prebook,
            search_days=o.search_days,
            log=log,
        )

    def _start(self, server: targets.Server, ready: str = "/readyz") -> targets.Server:
        self.started.append(server)
        if server.url:
            server.wait_ready(ready)
        return server

    def stop_all(self) -> None:
        for s in reversed(self.started):
            s.stop()
        self.started.clear()

    def _stop(self, *servers: targets.Server) -> None:
        for s in servers:
            s.stop()
            if s in self.started:
                self.started.remove(s)

    def _step(self, scenario: str, rate: float, connections: int | None = None, duration: float | None = None) -> Step:
        lead = 1.0 if self.o.quick else 2.0
        return Step(
            scenario=scenario,
            rate=rate,
            duration=duration or self.o.duration,
            warmup=self.o.warmup,
            connections=connections or self.o.connections,
            start_at=time.time() + lead,
            timeout=self.o.timeout,
            late_ms=self.o.late_ms,
            drain=self.o.timeout,
        )

    def _recreate_db(self, name: str) -> str:
        admin = create_engine(self.o.pg_admin_url)
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.o.pg_admin_url.rsplit("/", 1)[0] + "/" + name

    # ------------------------------------------------------------ the generator's ceiling
    def measure_ceiling(self) -> dict[str, Any]:
        out = ceiling.measure(self, log)
        self.ceiling = out["rate"]
        return out

    # ------------------------------------------------------------ sweeps
    def sweep(
        self,
        target: str,
        pool: GeneratorPool,
        scenario: str,
        groups: dict[str, list[int]],
    ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        steps: list[dict[str, Any]] = []
        booked: list[str] = []
        cancelled: list[str] = []
        for rate in self.o.rates:
            step = self._step(scenario, rate)
            if "postgres" in groups:
                groups["postgres"] = cpu.pids_named("postgres")
            meter = cpu.CpuMeter(groups)
            parts = pool.run(step)
            r = results.merge(target, step, parts, self.ceiling)
            r["cpu_percent"] = meter.stop()
            if target in (*ENGINES, "cluster"):
                r["write_behind_backlog"] = self._backlog()
            for p in parts:
                booked += [b[0] for b in p.get("booked", [])]
                cancelled += p.get("cancelled", [])
            steps.append(r)
            a = r["all"]
            log(
                f"   {target:<12} {scenario:<8} {rate:>6.0f}/s -> {r['achieved_rate']:>7.0f}/s  p50 {a.get('p50')}"
                f"  p99 {a.get('p99')}  p99.9 {a.get('p999')}  max {a.get('max')} ms  errors {sum(r['errors'].values())}"
                f"  late {r['late_queued']}+{r['late_generator']}{'  GENERATOR-BOUND' if r['generator_bound'] else ''}"
                f"  cpu {r['cpu_percent']}"
            )
            if results.saturated(r):
                break
        return steps, booked, cancelled

    def _backlog(self) -> dict[str, float]:
        """Events the persisters have not stored yet, and the age of the oldest (the write-behind lag)."""
        from persistence.streams import lag

        r = self.o.redis()
        try:
            behind, age = lag(r)
        finally:
            r.close()
        return {"events": behind, "oldest_s": round(age, 1)}

    def _groups(self, server: targets.Server, pool: GeneratorPool, extra: dict[str, list[int]]) -> dict[str, list[int]]:
        g = {"generator": pool.pids(), "server": server.pids()}
        g.update(extra)
        return g

    # ------------------------------------------------------------ engine
    def run_engine(self, target: str = "engine") -> Dataset:
        """``target``: ``engine`` (the availability cache off), ``engine-cache`` (on, ``--cache-bytes``) or
        ``cluster`` (the engine on the local Redis Cluster of ``--cluster``, the cache off)."""
        o = self.o
        log(f"== {target}" + (f" on a local Redis Cluster ({o.redis_url})" if target == "cluster" else ""))
        persister = None
        if o.target_url:
            url, db_url = o.target_url, o.database_url
            server = None
        else:
            o.redis().flushdb()  # on a cluster: every primary
            db_url = self._recreate_db(f"{o.db_prefix}_{target}")
            env_extra = dict(item.split("=", 1) for item in o.engine_env)
            env_extra["SEARCH_CACHE_BYTES"] = str(o.cache_bytes if target == "engine-cache" else 0)
            if o.engine_gc:
                site = str(Path(__file__).resolve().parent / "studies" / "gc_site")
                env_extra["PYTHONPATH"] = site + os.pathsep + os.environ.get("PYTHONPATH", "")
                env_extra["BENCH_GC_THRESHOLD"] = o.engine_gc
            env = targets.engine_env(o.redis_env(), db_url, env_extra)
            targets.migrate(env, self.logs)
            server = self._start(targets.start_engine(env, o.workers, self.logs, o.server, target))
            persister = self._start(targets.start_persister(env, self.logs))
            # its start-up reconciliation rewrites what PostgreSQL lacks: let it finish before seeding
            persister.wait_log("start-up reconciliation done")
            url = server.url
        data = self._seed(url)
        if "rules" in o.scenarios:
            data.rules, self._rules_note = rules.seed(url, o.admin_token, o.practices, o.practitioners, o.horizon)
            log(f"   seeded {len(data.rules)} practice-rules practices ({self._rules_note})")
        self._data = data
        r = o.redis()
        pool = GeneratorPool(url, data, self.o.admin_token, o.gen_procs)
        extra = {"redis": profile.redis_pids(r), "postgres": cpu.pids_named("postgres")}
        if target == "cluster":
            extra.update(cluster.node_groups(r))  # each redis-server's own CPU
        if persister is not None:
            extra["persister"] = [persister.pid]
        t_begin = time.time()
        try:
            for sc in [s for s in o.scenarios if s in SWEPT]:
                groups = self._groups(server, pool, extra) if server else {"generator": pool.pids(), **extra}
                if sc == "search" and o.few_clients:  # first: after a saturated step the server still drains
                    self.report.setdefault("few_clients", {})[target] = self._few_clients(target, pool, groups)
                steps, booked, cancelled = self.sweep(target, pool, sc, groups)
                self.report["runs"].setdefault(target, {})[sc] = steps
                self.report["invariants"].setdefault(target, {})[sc] = self._check_engine(
                    data, db_url, booked, cancelled, sc
                )
                if o.profile and server is not None:
                    self.report["profile"].setdefault(target, {})[sc] = self._profile(pool, server, sc, steps)
            self.report.setdefault("redis_view", {})[target] = profile.redis_view(r, t_begin)
            if target == "cluster":
                log("== cluster limits: each script by EVALSHA on each primary, loop and pipelined")
                limits = cluster.script_limits(r, data, o.lua_calls, log)
                limits["vs_single"] = cluster.compare(self.report.get("redis_limits", {}), limits)
                self.report["cluster_limits"] = limits
                return data
            if o.skip_limits or "redis_limits" in self.report:
                return data
            log("== Redis limits: each Lua script by EVALSHA, loop and pipelined")
            self.report["redis_limits"] = redis_limits.run(o.redis_url, data, o.lua_calls, log)
            log("== data scale: memory per practitioner-day; search latency as the store grows")
            self.report["data_scale"] = data_scale.run(
                o.redis_url, data, o.scale_sizes, lambda: self._probe(url), 2000 if not o.quick else 100, log
            )
        finally:
            pool.close()
            r.close()
            if server is not None:
                self._stop(server)
            if persister is not None:
                self._stop(persister)
        return data

    def _few_clients(self, target: str, pool: GeneratorPool, groups: dict[str, list[int]]) -> dict[str, Any]:
        """The search scenario once more with only a few connections (the issue's "4 concurrent clients")."""
        conns, rate = (int(x) for x in self.o.few_clients.split(":"))
        step = self._step("search", float(rate), connections=conns)
        meter = cpu.CpuMeter(groups)
        r = results.merge(target, step, pool.run(step), self.ceiling)
        r["cpu_percent"] = meter.stop()
        a = r["all"]
        log(f"   {target:<12} search   {rate}/s on {conns} connections: p50 {a.get('p50')}  p99 {a.get('p99')} ms")
        return r

    def _check_engine(
        self, data: Dataset, db_url: str | None, booked: list[str], cancelled: list[str], scenario: str
    ) -> Any:
        if not db_url:
            return invariants.Verdict(target="engine", skipped="no --database-url for a --target run")
        v = invariants.check_engine(self.o.redis(), db_url, [p.id for p in data.practices], booked, cancelled, log)
        offers = ""
        if scenario == "waitlist":
            r = self.o.redis()
            try:
                v.waitlist_offers, v.waitlist_unverified, bad = check_offers(
                    r, [p.id for p in waitlist_practices(data)]
                )
            finally:
                r.close()
            v.waitlist_violations = len(bad)
            v.examples += bad[:5]
            offers = f", {v.waitlist_offers} waitlist offers checked, {v.waitlist_violations} unfair or not exclusive"
        if scenario == "rules":
            r = self.o.redis()
            try:
                rv = rules.check(r, db_url, data.rules, int(time.time() * 1000), self._rules_note)
            finally:
                r.close()
            v.rules_claims, v.rules_violations, v.rules_note, v.rules_room_claims = (
                rv.redis_claims + rv.db_claims,
                len(rv.violations),
                rv.note,
                rv.room_claims,
            )
            v.examples += rv.violations[:5]
            offers = f"; {rules.summary(rv)}"
        log(
            f"   invariants: {'OK' if v.ok else 'VIOLATED'} ({v.checked_bookings} bookings checked, "
            f"{v.redis_overlaps}+{v.db_overlaps} overlaps, {v.missing_in_db} missing in PostgreSQL{offers})"
        )
        return v

    def _probe(self, url: str) -> dict[str, Any]:
        """Open-loop searches of a few seeded practices (the data-scale measurement)."""
        small = Dataset(
            practices=self._data.practices[:10],
            first_date=self._data.first_date,
            search_days=self._data.search_days,
            hot=self._data.hot,
        )
        pool = GeneratorPool(url, small, self.o.admin_token, 1)
        try:
            rate = 100.0 if self.o.quick else 300.0
            step = self._step(
                "search", rate, connections=100 if not self.o.quick else 20, duration=2.0 if self.o.quick else 8.0
            )
            r = results.merge("engine", step, pool.run(step), self.ceiling)
            return {"rate": rate, **r["per_type"].get("search", {}), "errors": r["errors"]}
        finally:
            pool.close()

    def _profile(self, pool: GeneratorPool, server: targets.Server, sc: str, steps: list[dict[str, Any]]) -> Any:
        k = results.knee(steps, self.o.slo_p99_ms)
        rate = k["offered_rate"] if k else self.o.rates[0]
        workers = server.workers()
        log(f"   profiling {sc} at {rate:.0f}/s: py-spy on workers {workers}")
        step = self._step(sc, rate, duration=self.o.profile_seconds)
        spies = profile.start(workers, self.o.profile_seconds + step.warmup, self.out_dir / "profiles", sc)
        pool.run(step)
        for s in spies:
            try:
                s.wait(30)
            except Exception:  # noqa: BLE001 - a stuck profiler must not hang the run
                s.kill()
        summary = profile.summarize(sorted((self.out_dir / "profiles").glob(f"{sc}-*.txt")))
        return {"rate": rate, **summary}

    # ------------------------------------------------------------ floor and comparator
    def _not_engine_only(self) -> list[str]:
        """The scenarios the floor and the comparator serve too (they have no waitlist)."""
        skipped = [sc for sc in self.o.scenarios if sc in ENGINE_ONLY]
        if skipped:
            log(f"   ({', '.join(skipped)}: the engine only)")
        return [sc for sc in self.o.scenarios if sc in SWEPT and sc not in ENGINE_ONLY]

    def run_floor(self, data: Dataset) -> None:
        log("== floor: bare Litestar endpoints, one Redis GET each")
        server = self._start(targets.start_floor(self.o.redis_env(), self.o.workers, self.logs, self.o.server))
        pool = GeneratorPool(server.url, data, self.o.admin_token, self.o.gen_procs)
        r = self.o.redis()
        extra = {"redis": profile.redis_pids(r)}
        r.close()
        try:
            for sc in self._not_engine_only():
                steps, _, _ = self.sweep("floor", pool, sc, self._groups(server, pool, extra))
                self.report["runs"].setdefault("floor", {})[sc] = steps
        finally:
            pool.close()
            self._stop(server)

    def run_pgonly(self) -> None:
        from benchmarks.pgonly import schema

        o = self.o
        log("== comparator: the same flows on PostgreSQL alone")
        db_url = schema.create(o.pg_admin_url, f"{o.db_prefix}_pgonly")
        server = self._start(targets.start_pgonly(db_url, o.workers, self.logs, o.pgonly_pool, o.server))
        data = self._seed(server.url)
        pool = GeneratorPool(server.url, data, self.o.admin_token, o.gen_procs)
        try:
            for sc in self._not_engine_only():
                groups = self._groups(server, pool, {"postgres": cpu.pids_named("postgres")})
                steps, booked, cancelled = self.sweep("pgonly", pool, sc, groups)
                self.report["runs"].setdefault("pgonly", {})[sc] = steps
                v = invariants.check_pgonly(db_url, booked, cancelled)
                log(
                    f"   invariants: {'OK' if v.ok else 'VIOLATED'} ({v.checked_bookings} bookings checked,"
                    f" {v.redis_overlaps}+{v.db_overlaps} overlaps, {v.missing_in_db} missing)"
                )
                self.report["invariants"].setdefault("pgonly", {})[sc] = v
        finally:
            pool.close()
            self._stop(server)

    # ------------------------------------------------------------ all of it
    def run(self) -> dict[str, Any]:
        o = self.o
        try:
            self.report["ceiling"] = self.measure_ceiling()
            data = None
            for target in ENGINES:
                if target in o.targets:
                    data = self.run_engine(target)
            if o.cluster and "engine" in o.targets:
                self.run_on_cluster()
            engines = [t for t in ENGINES if t in o.targets]
            if engines and not o.target_url:
                if "search" in o.scenarios:
                    log("== CPU per search in process (benchmarks/search_cpu.py), the cache off and on")
                    n = 300 if o.quick else 3000
                    self.report["search_cpu"] = search_cpu.run(o.redis_url, n, 3 if o.quick else 20, o.cache_bytes, log)
                if "outage" in o.scenarios:
                    self.report["outage"] = outage.run(self, engines, log)
            if "floor" in o.targets:
                if data is None:
                    data = self._seed_only_for_floor()
                self.run_floor(data)
            if "pgonly" in o.targets:
                self.run_pgonly()
        finally:
            self.stop_all()
        return self.report

    def run_on_cluster(self) -> None:
        """The engine again, on a local cluster started (and stopped by process id) here; the notification queue
        stays on the single Redis."""
        single = self.o
        dev = cluster.new_cluster()
        try:
            self.o = msgspec.structs.replace(
                single, redis_url=dev.url, redis_cluster=True, queue_redis_url=single.redis_url, skip_limits=True
            )
            self.run_engine("cluster")
        finally:
            self.o = single
            dev.stop()

    def _seed_only_for_floor(self) -> Dataset:
        return Dataset(
            practices=[
                PracticeData(
                    id="f" * 16, timezone="Europe/Paris", practitioners=["floor.r0"], visit_types=[("floor.v0", 30)]
                )
            ],
            first_date=time.strftime("%Y-%m-%d"),
            search_days=30,
            hot=HotSpot(
                practice_id="f" * 16,
                practitioner_id="floor.r0",
                visit_types=["floor.v0"],
                starts=["2030-01-07T09:00:00+01:00"],
            ),
        )
