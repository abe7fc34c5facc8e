"""The servers a run measures, started as subprocesses and stopped by pid.

- engine: `booking serve --workers N --server S` on REDIS_URL db 15 and a migrated bench_* database, plus a
  `booking persister`;
- floor: `benchmarks.floor_app:create_app` served the same way (granian or uvicorn, same workers);
- pgonly: `benchmarks.pgonly.app:create_app` served the same way, on its own bench_* database;
- trivial: `python -m benchmarks.trivial_server` (the generator's ceiling).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADMIN_TOKEN = "bench-admin-token"
PY = sys.executable
BOOKING = str(Path(PY).parent / "booking")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in task.read_text().split()]
                out += kids
                todo += kids
    return out


class Server:
    """One subprocess (and whatever it forks), its log in the results folder."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, url: str = "") -> None:
        self.name, self.url = name, url
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parent.parent),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> list[int]:
        return [self.pid, *children(self.pid)]

    def workers(self) -> list[int]:
        """The worker processes: those uvicorn spawned (not its resource tracker), or granian's forked
        children; the process itself if none."""
        out, own = [], []
        try:
            me = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return [self.pid]
        for pid in children(self.pid):
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"spawn_main" in cmd:
                    out.append(pid)
                elif cmd == me:
                    own.append(pid)
        return out or own or [self.pid]

    def wait_ready(self, path: str = "/readyz", timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    def wait_log(self, text: str, timeout: float = 120) -> None:
        """Until ``text`` appears in the process's output (e.g. the persister's start-up reconciliation)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.log.flush()
            if text in self.log_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name}: no {text!r} after {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM to our own pid (uvicorn's supervisor stops its workers), SIGKILL to what is left."""
        if self.proc.poll() is None:
            kids = children(self.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for k in kids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(k, signal.SIGKILL)
        self.log.close()


def engine_env(redis_env: dict[str, str], database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """``redis_env``: REDIS_URL, and REDIS_CLUSTER and QUEUE_REDIS_URL on a cluster (Options.redis_env)."""
    env = {
        **redis_env,
        "DATABASE_URL": database_url,
        "BOOKING_ADMIN_TOKEN": ADMIN_TOKEN,
        "BOOKING_AUDIT_SEARCHES": "1",
        "HOLD_TTL_SECONDS": "300",
        # the load sends the admin token (no abuse limits); these only matter if someone drops it
        "LIMIT_HOLDS_PER_MINUTE": "100000000",
        "LIMIT_BOOKINGS_PER_MINUTE": "100000000",
        "LIMIT_LIVE_HOLDS": "100000000",
    }
    env.update(extra or {})
    return env


def migrate(env: dict[str, str], log_dir: Path) -> None:
    out = subprocess.run([BOOKING, "migrate"], env={**os.environ, **env}, capture_output=True, text=True)
    (log_dir / "migrate.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"booking migrate failed: {out.stderr[-2000:]}")


SERVERS = ("granian", "uvicorn")
BACKPRESSURE = 16384  # granian: connections a worker serves at once (`booking serve`'s default)


def start_engine(
    env: dict[str, str], workers: int, log_dir: Path, server: str = "granian", name: str = "engine"
) -> Server:
    port = free_port()
    argv = [BOOKING, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    argv += ["--server", server, "--backpressure", str(BACKPRESSURE)]
    return Server(name, argv, env, log_dir, f"http://127.0.0.1:{port}")


def start_persister(env: dict[str, str], log_dir: Path) -> Server:
    return Server("persister", [BOOKING, "persister"], env, log_dir)


def _asgi(name: str, factory: str, workers: int, env: dict[str, str], log_dir: Path, server: str) -> Server:
    """A reference app served the way the engine is (same server, workers and settings)."""
    port = free_port()
    common = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    if server == "granian":
        argv = [PY, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop", "--no-access-log"]
        argv += ["--backpressure", str(BACKPRESSURE), "--backlog", "4096", *common, factory]
    else:
        argv = [PY, "-m", "uvicorn", "--factory", factory, *common, "--no-access-log"]
    return Server(name, argv, env, log_dir, f"http://127.0.0.1:{port}")


def start_floor(redis_env: dict[str, str], workers: int, log_dir: Path, server: str = "granian") -> Server:
    return _asgi("floor", "benchmarks.floor_app:create_app", workers, redis_env, log_dir, server)


def start_pgonly(database_url: str, workers: int, log_dir: Path, pool: int = 20, server: str = "granian") -> Server:
    env = {"PGONLY_DATABASE_URL": database_url, "HOLD_TTL_SECONDS": "300", "PGONLY_POOL": str(pool)}
    return _asgi("pgonly", "benchmarks.pgonly.app:create_app", workers, env, log_dir, server)


def start_trivial(log_dir: Path) -> Server:
    port = free_port()
    return Server(
        "trivial", [PY, "-m", "benchmarks.trivial_server", str(port)], {}, log_dir, f"http://127.0.0.1:{port}"
    )
