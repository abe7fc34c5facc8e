"""Servers a test runs as real processes: `booking serve`, `booking persister`, the `booking` CLI, and a
redis-server and a PostgreSQL cluster of the test's own. Every process is started through
tests.support.processes (its own process group); waits are polls with deadlines."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import processes
from tests.support.config import ADMIN, REDIS_URL
from tests.support.databases import redis_client
from tests.support.http import ready
from tests.support.processes import Procs

CLI = [sys.executable, "-m", "api.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def serve_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of `booking serve` / `booking persister` on the given stores, as a deployment runs them;
    the per-client abuse limits are lifted (the load comes from one address; tests/integration/test_access.py covers them)."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "BOOKING_ADMIN_TOKEN": ADMIN,
        "HOLD_TTL_SECONDS": "300",
        "PYTHONUNBUFFERED": "1",
        "LIMIT_LIVE_HOLDS": "100000",
        "LIMIT_HOLDS_PER_MINUTE": "1000000",
        "LIMIT_BOOKINGS_PER_MINUTE": "1000000",
        **extra,
    }


class Server:
    def __init__(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.proc = url, proc


def start_serve(procs: Procs, env: dict[str, str], *args: str, workers: int = 2, timeout: float = 60) -> Server:
    """`booking serve --workers N` on a free port, ready (/readyz answers 200) when this returns."""
    port = free_port()
    proc = procs.start(
        "serve", [*CLI, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning", *args], env
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"booking serve exited with {proc.returncode}:\n{procs.log_of(proc)}")
        return ready(url)

    wait_until(up, timeout, "booking serve to become ready")
    return Server(url, proc)


def start_persister(procs: Procs, env: dict[str, str], batch: int = 500) -> subprocess.Popen[bytes]:
    """`booking persister`, returned once its start-up reconciliation is done."""
    proc = procs.start("persister", [*CLI, "persister", "--batch", str(batch)], env)

    def consuming() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"booking persister exited with {proc.returncode}:\n{procs.log_of(proc)}")
        return "consuming event streams" in procs.log_of(proc)

    wait_until(consuming, 60, "the persister's start-up reconciliation")
    return proc


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `booking` command to its end (its whole process group killed if it outlives ``timeout``)."""
    return processes.run([*CLI, *args], env, timeout=timeout)


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
        processes.kill9(self.proc)


class ThrowawayPostgres:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl as the postgres OS user), trust auth. pg_ctl
    detaches the server, so its pid is tracked (tests.support.processes.track) rather than its process."""

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
        return processes.run(cmd, timeout=timeout, cwd=self.base)

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
        pid = self.postmaster_pid()
        self.pids.add(pid)
        processes.track(pid, f"the PostgreSQL server of {self.data}", log=self.log)

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


@contextlib.contextmanager
def serving(database_url: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`booking serve --workers 2` on the real Redis (``extra_env`` may point it elsewhere, e.g. a cluster), as a
    deployment would run it; stopped with its process group when the block ends."""
    with tempfile.TemporaryDirectory(prefix="serving-") as logdir:
        procs = Procs(Path(logdir))
        try:
            yield start_serve(procs, serve_env(REDIS_URL, database_url, **(extra_env or {})))
        finally:
            procs.close()
