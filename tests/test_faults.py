"""Fault tests (issue 3, DESIGN.md invariants 2, 7 and 8), against real processes:

* `kill -9` the persister in the middle of a batch under load: every acknowledged booking reaches
  PostgreSQL exactly once, with exactly one `book` audit row, and the audit chain verifies;
* `kill -9` Redis (AOF, appendfsync always) under load: no acknowledged booking is lost, requests during the
  outage get errors (503 dependency_unavailable or a broken connection), never a 201;
* stop PostgreSQL (a throwaway cluster) under load: no request fails, the persister catches up, nothing is
  missing or duplicated;
* FLUSHALL Redis, `booking reconcile`: search offers exactly what it offered before, a booked interval
  cannot be held, appointments are readable, the audit chain continues.

Every process started here (`booking serve --workers 2`, `booking persister`, `redis-server`, PostgreSQL) is
stopped by its process id in a fixture teardown. Waits are polls with deadlines; nothing asserts on timing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync
from sqlalchemy import text
from sqlalchemy.engine import Engine

from persistence.db import make_engine
from tests.conftest import ADMIN, AUTH, REDIS_URL, WEEKDAYS, free_port, fresh_database, setup_practice

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SHARED_REDIS = REDIS_URL.rsplit("/", 1)[0]  # redis://127.0.0.1:6379
CLI = [sys.executable, "-m", "api.cli"]
OK_ANSWERS = {(200, ""), (201, ""), (409, "slot_unavailable")}
REDIS_DOWN = (503, "dependency_unavailable")


# ------------------------------------------------------------------------------------------------ helpers
def wait_until(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``pred`` until it returns something truthy; fail the test (naming ``what``) at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as exc:  # noqa: BLE001 - a dependency may still be coming up
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Procs:
    """Every process a test starts; each in its own session, so that a uvicorn supervisor's workers can be
    stopped through its process group (whose id is the supervisor's pid) should it not stop them itself."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self._files: list[Any] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        path = self.logdir / f"{name}-{len(self.started)}.log"
        log = open(path, "wb")  # closed in close()
        self._files.append(log)
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(proc)
        self.logs[proc.pid] = path
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    @staticmethod
    def kill9(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of its group (uvicorn workers), if any

    def close(self) -> None:
        for proc in reversed(self.started):
            self.stop(proc)
        for f in self._files:
            f.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


def env_for(redis_url: str, database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "BOOKING_ADMIN_TOKEN": ADMIN,
        "HOLD_TTL_SECONDS": "300",
        "PYTHONUNBUFFERED": "1",
        # the load comes from one address as public clients: lift the per-client abuse limits
        "LIMIT_LIVE_HOLDS": "100000",
        "LIMIT_HOLDS_PER_MINUTE": "1000000",
        "LIMIT_BOOKINGS_PER_MINUTE": "1000000",
    }


def ready(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    return False


def start_serve(procs: Procs, env: dict[str, str]) -> str:
    port = free_port()
    proc = procs.start("serve", [*CLI, "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"], env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"booking serve exited with {proc.returncode}:\n{procs.log_of(proc)}")
        return ready(url)

    wait_until(up, 60, "booking serve to become ready")
    return url


def start_persister(procs: Procs, env: dict[str, str], batch: int = 500) -> subprocess.Popen[bytes]:
    proc = procs.start("persister", [*CLI, "persister", "--batch", str(batch)], env)

    def consuming() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"booking persister exited with {proc.returncode}:\n{procs.log_of(proc)}")
        return "consuming event streams" in procs.log_of(proc)

    wait_until(consuming, 60, "the persister's start-up reconciliation")
    return proc


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def lag_events(url: str) -> float | None:
    body = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(r"^booking_persister_lag_events (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def make_practice(url: str, practitioners: int = 3) -> dict[str, Any]:
    """Three practitioners, 30-minute visits, open 07:00-19:00 every day (thousands of slots)."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
        weekly = [{"day": d, "start": "07:00", "end": "19:00"} for d in WEEKDAYS]
        return setup_practice(c, durations=(30,), practitioners=practitioners, weekly=weekly)


def days_ahead(first: int = 2, count: int = 80) -> list[dt.date]:
    today = dt.date.today()
    return [today + dt.timedelta(days=first + i) for i in range(count)]


class Load:
    """Threads doing search -> hold -> book against a server, as the patient apps would. Every answer is
    counted by (phase, step, status, code); every 201 appointment is remembered with the phase it came in."""

    def __init__(self, url: str, ctx: dict[str, Any], threads: int = 4, pace: float = 0.01) -> None:
        self.url, self.ctx, self.pace = url, ctx, pace
        self.vt = ctx["visit_types"][30]
        self.days = days_ahead()
        self.phase, self.phase_seq = "start", 0
        self.thread_seq = [0] * threads
        self.answers: Counter[tuple[str, str, int, str]] = Counter()
        self.transport_errors: Counter[tuple[str, str, str]] = Counter()
        self.booked: dict[str, dict[str, Any]] = {}  # appointment id -> body, plus the phase
        self.failed_book_holds: set[str] = set()  # holds whose book call got no 201 (may or may not be booked)
        self.missing_retry_after = 0
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        self.crashes: list[BaseException] = []

    # -------------------------------------------------------------- recording
    def _note(self, phase: str, step: str, r: httpx.Response) -> None:
        code = ""
        if r.status_code >= 400:
            try:
                code = str(r.json().get("code", ""))
            except ValueError:
                code = "<not json>"
        with self.lock:
            self.answers[(phase, step, r.status_code, code)] += 1
            if r.status_code == 503 and "retry-after" not in r.headers:
                self.missing_retry_after += 1
        if r.status_code == 503:
            self.stop_ev.wait(0.05)  # back off a little, as Retry-After asks

    @property
    def n_booked(self) -> int:
        with self.lock:
            return len(self.booked)

    def unexpected(self, allowed: set[tuple[int, str]]) -> dict[tuple[str, str, int, str], int]:
        with self.lock:
            return {k: n for k, n in self.answers.items() if (k[2], k[3]) not in allowed}

    def count(self, status: int, code: str = "") -> int:
        with self.lock:
            return sum(n for k, n in self.answers.items() if k[2] == status and k[3] == code)

    # -------------------------------------------------------------- phases
    def set_phase(self, name: str) -> None:
        with self.lock:
            self.phase_seq += 1
            self.phase = name

    def settle(self, timeout: float = 30) -> None:
        """Wait until every thread has started a request in the current phase: nothing sent earlier is in
        flight any more."""
        with self.lock:
            seq = self.phase_seq
        wait_until(lambda: min(self.thread_seq) >= seq, timeout, "the load threads to finish their requests")

    def _begin(self, index: int) -> str:
        with self.lock:
            self.thread_seq[index] = self.phase_seq
            return self.phase

    # -------------------------------------------------------------- the loop
    def _run(self, index: int) -> None:
        rnd = random.Random(index)
        try:
            with httpx.Client(base_url=self.url, timeout=10) as c:
                while not self.stop_ev.is_set():
                    self._one(c, rnd, index)
                    self.stop_ev.wait(self.pace)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.crashes.append(exc)
        finally:
            with self.lock:
                self.thread_seq[index] = 1 << 30  # a stopped thread has nothing in flight

    def _one(self, c: httpx.Client, rnd: random.Random, index: int) -> None:
        step, hold_id = "search", None
        phase = self._begin(index)
        try:
            day = rnd.choice(self.days)
            r = c.get(
                f"/v1/practices/{self.ctx['practice_id']}/availability",
                params={"date": day.isoformat(), "visit_type_id": self.vt, "days": 1},
            )
            self._note(phase, step, r)
            if r.status_code != 200 or not r.json()["slots"]:
                return
            slot = rnd.choice(r.json()["slots"])
            step = "hold"
            phase = self._begin(index)
            r = c.post(
                "/v1/holds",
                json={"practitioner_id": slot["practitioner_id"], "visit_type_id": self.vt, "start": slot["start"]},
            )
            self._note(phase, step, r)
            if r.status_code != 201:
                return
            hold_id = r.json()["id"]
            step = "book"
            phase = self._begin(index)
            r = c.post(
                "/v1/appointments",
                json={"hold_id": hold_id, "patient": {"name": f"Patient {index}", "email": f"p{index}@example.org"}},
            )
            self._note(phase, step, r)
            if r.status_code == 201:
                body = r.json()
                with self.lock:
                    self.booked[body["id"]] = {**body, "phase": phase}
            else:
                with self.lock:
                    self.failed_book_holds.add(hold_id)
        except httpx.TransportError as exc:
            with self.lock:
                self.transport_errors[(phase, step, type(exc).__name__)] += 1
                if step == "book" and hold_id:
                    self.failed_book_holds.add(hold_id)
            self.stop_ev.wait(0.05)

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"
        assert not self.crashes, self.crashes

    def summary(self) -> str:
        with self.lock:
            by_phase: Counter[str] = Counter(b["phase"] for b in self.booked.values())
            return (
                f"{len(self.booked)} acknowledged bookings by phase {dict(by_phase)}; answers {dict(self.answers)};"
                f" transport errors {dict(self.transport_errors)}"
            )

    def wait_for_more(self, n: int, timeout: float = 60) -> None:
        target = self.n_booked + n
        wait_until(lambda: self.n_booked >= target, timeout, f"{n} more acknowledged bookings ({self.answers})")


@contextlib.contextmanager
def running(load: Load) -> Iterator[Load]:
    load.start()
    try:
        yield load
    finally:
        load.stop_ev.set()
        for t in load.threads:
            t.join(30)


def q(db: Engine, sql: str, **params: Any) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(text(sql), params).all())


@contextlib.contextmanager
def database(url: str) -> Iterator[Engine]:
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


@contextlib.contextmanager
def redis_client(url: str) -> Iterator[redis_sync.Redis]:
    r = redis_sync.Redis.from_url(url, socket_connect_timeout=1)
    try:
        yield r
    finally:
        r.close()


def stored_ids(db: Engine) -> list[str]:
    return [row[0] for row in q(db, "select id from appointments")]


def assert_stored_exactly_once(db: Engine, booked: set[str], may_also_hold: set[str] | None = None) -> None:
    """Every acknowledged appointment is in `appointments` once, booked, with exactly one `book` audit row;
    anything else stored comes from a book call whose answer was lost (its hold is in ``may_also_hold``)."""
    rows = q(db, "select id, status, hold_id from appointments")
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))
    missing = booked - set(ids)
    assert not missing, f"{len(missing)} acknowledged booking(s) missing from PostgreSQL: {sorted(missing)[:5]}"
    extra = {r[0]: r[2] for r in rows if r[0] not in booked}
    assert set(extra.values()) <= (may_also_hold or set()), f"appointments nobody booked: {extra}"
    assert all(r[1] == "booked" for r in rows if r[0] in booked)
    book_rows = Counter(r[0] for r in q(db, "select appointment_id from audit_events where action = 'book'"))
    assert {a for a, n in book_rows.items() if n != 1} == set(), "an appointment has more than one book row"
    assert set(book_rows) == set(ids), "book audit rows and appointments differ"
    # the audit chain has no hole and no repeat: seq 1..N in chain order, per practice
    for (pid,) in q(db, "select distinct practice_id from audit_events"):
        seqs = [r[0] for r in q(db, "select seq from audit_events where practice_id = :p order by chain_index", p=pid)]
        assert seqs == list(range(1, len(seqs) + 1))


def assert_audit_verifies(env: dict[str, str]) -> None:
    res = run_cli(env, "audit", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all chains intact" in res.stdout, res.stdout


# ------------------------------------------------------------------------------------------------ redis-server
class RedisServer:
    """A redis-server of the test's own; with ``aof`` it fsyncs its AOF before every reply (appendfsync always),
    the policy under which a 201 survives `kill -9` of Redis."""

    def __init__(self, procs: Procs, workdir: Path, aof: bool = True) -> None:
        self.procs, self.dir, self.aof = procs, workdir, aof
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.dir)]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        self.proc = self.procs.start("redis", args, dict(os.environ))

        def pong() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited:\n{self.procs.log_of(self.proc)}")
            with redis_client(self.url) as r:
                return bool(r.ping())

        wait_until(pong, 30, "redis-server to answer PING")

    def kill9(self) -> None:
        assert self.proc is not None
        Procs.kill9(self.proc)


# ------------------------------------------------------------------------------------------------ PostgreSQL
class ThrowawayPostgres:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl as the postgres OS user), trust auth."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
        self.bin = Path(bins[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="booking-faults-pg-"))
        self.data, self.sock, self.log = self.base / "data", self.base / "sock", self.base / "server.log"
        self.sock.mkdir()
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its files belong to the postgres user
            user = pwd.getpwnam("postgres")
            for path in (self.base, self.sock):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.port = free_port()
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/booking"
        self.pids: set[int] = set()

    def _as_postgres(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=self.base)

    def init(self) -> None:
        res = self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )
        assert res.returncode == 0, res.stdout + res.stderr

    def start(self) -> None:
        opts = f"-k {self.sock} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        res = self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start"
        )
        assert res.returncode == 0, res.stdout + res.stderr + self.log.read_text(errors="replace")
        self.pids.add(self.postmaster_pid())

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])

    def stop_immediately(self) -> None:
        res = self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        assert res.returncode == 0, res.stdout + res.stderr

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        for pid in self.pids:  # by pid, should pg_ctl not have managed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.close()


# ------------------------------------------------------------------------------------------------ the tests
def test_kill9_persister_mid_batch_under_load_stores_every_booking_exactly_once(procs: Procs) -> None:
    rurl = f"{SHARED_REDIS}/10"
    with redis_client(rurl) as r:
        r.flushdb()
    db_url = fresh_database("booking_fault_persister")
    env = env_for(rurl, db_url)
    url = start_serve(procs, env)
    ctx = make_practice(url)
    stream = f"bk:v1:{{p:{ctx['practice_id']}}}:events"
    first = start_persister(procs, env, batch=20)
    killed_mid_batch = 0
    with database(db_url) as db, redis_client(rurl) as r, running(Load(url, ctx)) as load:
        load.set_phase("persister running")
        load.wait_for_more(40)
        wait_until(lambda: q(db, "select count(*) from appointments")[0][0] > 0, 60, "the persister to store some")
        # kill -9 while the persister holds a read batch it has not acknowledged (entries pending for it)
        victim = first
        for _ in range(5):
            wait_until(
                lambda: any(c["pending"] for c in r.xinfo_consumers(stream, "persisters")),
                30,
                "the persister to hold an unacknowledged batch",
                every=0.001,
            )
            Procs.kill9(victim)
            dead = [c for c in r.xinfo_consumers(stream, "persisters") if c["pending"]]
            if dead:
                killed_mid_batch = sum(c["pending"] for c in dead)
                break
            victim = start_persister(procs, env, batch=20)  # it had just acknowledged: try again
        assert killed_mid_batch, "could not kill the persister in the middle of a batch"
        print(f"persister killed holding {killed_mid_batch} unacknowledged entries")
        load.set_phase("no persister")
        load.wait_for_more(40)
        start_persister(procs, env, batch=20)
        load.set_phase("second persister")
        load.wait_for_more(40)
        load.stop()
        print(load.summary())
        booked = set(load.booked)
        wait_until(lambda: booked <= set(stored_ids(db)), 60, "every acknowledged booking to reach PostgreSQL")
        wait_until(lambda: lag_events(url) == 0.0, 60, "the persister lag to return to zero")
        assert load.unexpected(OK_ANSWERS) == {}
        assert not load.transport_errors
        assert_stored_exactly_once(db, booked)
        assert r.xpending(stream, "persisters")["pending"] == 0
    assert_audit_verifies(env)


def test_kill9_redis_under_load_loses_no_acknowledged_booking(procs: Procs, tmp_path: Path) -> None:
    rs = RedisServer(procs, tmp_path / "redis-aof")
    rs.start()
    db_url = fresh_database("booking_fault_redis")
    env = env_for(rs.url, db_url)
    url = start_serve(procs, env)
    ctx = make_practice(url)
    start_persister(procs, env)
    with database(db_url) as db, running(Load(url, ctx)) as load:
        load.set_phase("redis up")
        load.wait_for_more(60)
        rs.kill9()
        load.set_phase("redis down")
        outage_start = load.count(503, "dependency_unavailable") + sum(load.transport_errors.values())
        wait_until(
            lambda: (
                load.count(503, "dependency_unavailable") + sum(load.transport_errors.values()) >= outage_start + 40
            ),
            30,
            "requests to fail while Redis is down",
        )
        load.set_phase("redis restarting")
        load.settle()  # no request sent while Redis was down is still in flight when it comes back
        rs.start()  # same port, same AOF directory
        load.set_phase("redis restarted")
        # the reconciliation marker came back from the AOF with everything else: no re-reconciliation needed
        wait_until(lambda: ready(url), 30, "/readyz after the Redis restart (did Redis keep its data?)")
        load.wait_for_more(60)
        load.stop()

        print(load.summary())
        booked = dict(load.booked)
        down = {k: n for k, n in load.answers.items() if k[0] == "redis down"}
        assert not any(k[2] == 201 for k in down), f"201 answered while Redis was down: {down}"
        assert load.unexpected(OK_ANSWERS | {REDIS_DOWN}) == {}, "answers other than 2xx/409/503"
        assert load.count(*REDIS_DOWN) > 0, "no request met the outage"
        assert load.missing_retry_after == 0, "a 503 without Retry-After"
        # every 201 survived the kill -9: readable from the restarted Redis, and stored in PostgreSQL
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as c:
            for appt_id, body in booked.items():
                got = c.get(f"/v1/appointments/{appt_id}")
                assert got.status_code == 200, (appt_id, body["phase"], got.text)
                assert got.json()["status"] == "booked"
                assert (got.json()["start"], got.json()["practitioner_id"]) == (body["start"], body["practitioner_id"])
        wait_until(lambda: set(booked) <= set(stored_ids(db)), 60, "every acknowledged booking to reach PostgreSQL")
        wait_until(lambda: lag_events(url) == 0.0, 60, "the persister lag to return to zero")
        assert_stored_exactly_once(db, set(booked), may_also_hold=set(load.failed_book_holds))
        # nothing half-done: a hold whose book call failed is either still held (and no appointment exists)
        # or used by exactly one stored booking (the script ran before Redis died, the answer was lost)
        by_hold = Counter(row[0] for row in q(db, "select hold_id from appointments"))
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as c:
            for hold_id in load.failed_book_holds:
                h = c.get(f"/v1/holds/{hold_id}")
                if h.status_code == 200:
                    assert h.json()["status"] == "held" and by_hold[hold_id] == 0, (hold_id, h.text)
                else:
                    assert (h.status_code, h.json()["code"]) == (409, "hold_used"), (hold_id, h.text)
                    assert by_hold[hold_id] == 1, hold_id
    assert_audit_verifies(env)


def test_postgres_down_under_load_fails_no_request_and_the_persister_catches_up(
    procs: Procs, throwaway_pg: ThrowawayPostgres
) -> None:
    pg = throwaway_pg
    with database(pg.admin_url) as admin, admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text('CREATE DATABASE "booking"'))
    rurl = f"{SHARED_REDIS}/11"
    with redis_client(rurl) as r:
        r.flushdb()
    env = env_for(rurl, pg.url)
    migrated = run_cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    url = start_serve(procs, env)
    ctx = make_practice(url)
    persister = start_persister(procs, env, batch=50)
    with database(pg.url) as db, running(Load(url, ctx)) as load:
        load.set_phase("postgres up")
        load.wait_for_more(40)
        wait_until(lambda: q(db, "select count(*) from appointments")[0][0] > 0, 60, "the persister to store some")
        db.dispose()  # drop pooled connections before the cluster goes away
        pg.stop_immediately()
        load.set_phase("postgres down")
        stopped_at = load.n_booked
        time.sleep(4)  # the outage; the load keeps running meanwhile (no assertion on timing)
        load.wait_for_more(20)  # and keeps booking
        assert load.n_booked > stopped_at
        pg.start()
        load.set_phase("postgres restarted")
        load.wait_for_more(40)
        load.stop()

        print(load.summary())
        assert load.unexpected(OK_ANSWERS) == {}, "a request failed while PostgreSQL was down"
        assert not load.transport_errors
        booked = {a for a, b in load.booked.items()}
        during = {a for a, b in load.booked.items() if b["phase"] == "postgres down"}
        assert during, "nothing was booked during the outage"
        wait_until(lambda: lag_events(url) == 0.0, 90, "the persister lag to return to zero")
        assert "database unavailable" in procs.log_of(persister), "the persister never noticed the outage"
        assert_stored_exactly_once(db, booked)
    assert_audit_verifies(env)


def test_flushall_then_reconcile_offers_exactly_what_was_offered(procs: Procs, tmp_path: Path) -> None:
    rs = RedisServer(procs, tmp_path / "redis-flush", aof=False)
    rs.start()
    db_url = fresh_database("booking_fault_reconcile")
    env = env_for(rs.url, db_url)
    url = start_serve(procs, env)
    ctx = make_practice(url, practitioners=2)
    pid, vt = ctx["practice_id"], ctx["visit_types"][30]
    day = days_ahead(first=3, count=1)[0]
    start_persister(procs, env)
    appts: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as c:
        slots = c.get(f"/v1/practices/{pid}/availability", params={"date": day.isoformat(), "visit_type_id": vt})
        for s in slots.json()["slots"]:
            h = c.post(
                "/v1/holds", json={"practitioner_id": s["practitioner_id"], "visit_type_id": vt, "start": s["start"]}
            )
            if h.status_code == 409:  # overlaps one booked just before (slots start every 15 minutes)
                continue
            assert h.status_code == 201, h.text
            b = c.post(
                "/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "Ada", "email": "a@b.c"}}
            )
            assert b.status_code == 201, b.text
            appts.append(b.json())
            if len(appts) == 6:
                break
        cancelled = appts.pop()
        assert c.post(f"/v1/appointments/{cancelled['id']}/cancel", json={"reason": "ill"}).status_code == 200

        def availability() -> list[dict[str, str]]:
            r = c.get(
                f"/v1/practices/{pid}/availability", params={"date": day.isoformat(), "visit_type_id": vt, "days": 7}
            )
            assert r.status_code == 200, r.text
            return r.json()["slots"]  # type: ignore[no-any-return]

        before = availability()
        assert before
        with database(db_url) as db:
            wait_until(lambda: lag_events(url) == 0.0, 60, "the persister to catch up")
            assert len(stored_ids(db)) == len(appts) + 1
        with redis_client(rs.url) as r:
            r.flushall()
        assert c.get("/readyz").status_code == 503  # Redis lost its data: not ready until reconciled

        res = run_cli(env, "reconcile")
        assert res.returncode == 0, res.stdout + res.stderr
        for a in [*appts, cancelled]:
            assert f"restored in Redis: appointment {a['id']}" in res.stdout, res.stdout
        assert "schedule of" in res.stdout
        wait_until(lambda: ready(url), 30, "/readyz after the reconciliation")

        assert availability() == before
        taken = appts[0]
        again = c.post(
            "/v1/holds",
            json={"practitioner_id": taken["practitioner_id"], "visit_type_id": vt, "start": taken["start"]},
        )
        assert again.status_code == 409 and again.json()["code"] == "slot_unavailable", again.text
        got = c.get(f"/v1/appointments/{taken['id']}")
        assert got.status_code == 200 and got.json()["status"] == "booked", got.text
        gone = c.get(f"/v1/appointments/{cancelled['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled", gone.text
        # the interval of the cancelled appointment is offered and can be booked; the chain continues
        h = c.post(
            "/v1/holds",
            json={"practitioner_id": cancelled["practitioner_id"], "visit_type_id": vt, "start": cancelled["start"]},
        )
        assert h.status_code == 201, h.text
        b = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "Bo", "email": "b@c.d"}})
        assert b.status_code == 201, b.text
        with database(db_url) as db:
            wait_until(lambda: b.json()["id"] in stored_ids(db), 60, "the new booking to reach PostgreSQL")
    assert_audit_verifies(env)
