"""Every process a test starts goes through here.

Each one runs in a session of its own, so it leads its own process group (whose id is its pid) and whatever
it forks (uvicorn and granian workers) stays in that group even when it outlives its parent. Stopping a
process stops its group. Every process is remembered until the end of the session, where tests/conftest.py
checks with ``leftovers()`` that none is still running, no member of any of their groups is, and the test
run has no child process left.

Every process writes its stdout and stderr to a log file (``log=``, or one of its own in ``LOG_DIR``), and every
log is registered: when a test fails, tests/support/process_logs.py adds the tail of the log of each process the
test started, or found still running, to its report (``log_tails``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from tests.support.config import ROOT

_started: dict[int, subprocess.Popen[Any]] = {}  # pid -> process, everything spawned this session
_born: dict[int, int] = {}  # pid -> its start time (clock ticks after boot), to tell a reused pid apart
_foreign: dict[int, str] = {}  # processes we caused but that are not our children (a PostgreSQL postmaster)

LOG_DIR: Path | None = None  # where a process started with no ``log`` writes (the session's; a temporary folder)
TAIL_LINES = 80  # of each log, in a failed test's report


class Log(NamedTuple):
    """A process's log file: ``title`` names the process, ``running`` says whether it still runs."""

    title: str
    path: Path
    running: Callable[[], bool]


_logs: list[Log] = []  # every log registered this session, in order
_first_of_test = 0  # the index in _logs of the first log of the test now running
_numbers = itertools.count(1)


def _name_of(args: list[str]) -> str:
    """``redis-server``, ``api.cli serve``: the program, or the module and its command."""
    if len(args) > 2 and args[1] == "-m":
        return " ".join(args[2:4])
    return Path(args[0]).name if args else "?"


def log_dir() -> Path:
    global LOG_DIR
    if LOG_DIR is None:
        LOG_DIR = Path(tempfile.mkdtemp(prefix="booking-test-logs-"))
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR


def register_log(title: str, path: Path, running: Callable[[], bool] = lambda: False) -> None:
    """Show ``path``'s tail in the report of a test that fails while ``running()`` or that registered it."""
    _logs.append(Log(title, path, running))


def test_begins() -> None:
    """A new test starts: from now on, the logs of processes stopped before it are no longer its concern."""
    global _first_of_test
    _first_of_test = len(_logs)


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def log_tails(lines: int = TAIL_LINES) -> list[tuple[str, str]]:
    """(section title, the last ``lines`` lines) of each log of the running test: the processes it started, and
    those started before it (a module's server) that still run."""
    mine = [log for i, log in enumerate(_logs) if i >= _first_of_test or log.running()]
    return [(f"log of {log.title} (last {lines} lines of {log.path})", _tail(log.path, lines)) for log in mine]


def spawn(
    args: list[str],
    env: dict[str, str] | None = None,
    *,
    log: Path | None = None,
    text: bool = False,
    cwd: Path = ROOT,
) -> subprocess.Popen[Any]:
    """Start ``args`` in its own session, its stdout and stderr to ``log`` (by default a file of its own in
    ``log_dir()``); the log is registered for the report of a test that fails (``log_tails``)."""
    if log is None:
        log = log_dir() / f"{next(_numbers)}-{_name_of(args).replace(' ', '-')}.log"
    out = open(log, "wb")
    try:
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=text,
            start_new_session=True,
        )
    finally:
        out.close()
    _remember(proc)
    register_log(f"{_name_of(args)} (pid {proc.pid})", log, lambda: proc.poll() is None)
    return proc


def _remember(proc: subprocess.Popen[Any]) -> None:
    _started[proc.pid] = proc
    st = _stat(proc.pid)
    if st is not None:
        _born[proc.pid] = st.start


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL to every process left in ``proc``'s group (nothing if the group is empty)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """SIGTERM (a supervisor then stops its workers), SIGKILL after ``timeout``, then SIGKILL to whatever is
    left of its process group; the process is reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    kill_group(proc)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def kill9(proc: subprocess.Popen[Any]) -> None:
    """`kill -9` of the process itself (what a fault test does to it); its group is left alone."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def run(
    args: list[str], env: dict[str, str] | None = None, *, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Like ``subprocess.run(capture_output=True, text=True)``, in a session of its own; at the timeout the
    whole group is killed (not only the command) and TimeoutExpired raised."""
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _remember(proc)
    out = err = None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise
    finally:
        kill_group(proc)  # anything it started and left behind
        _save_output(args, proc.pid, out, err)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _save_output(args: list[str], pid: int, out: str | None, err: str | None) -> None:
    """What ``run`` captured, to a registered log file of its own (a failed test's report shows it too)."""
    path = log_dir() / f"{next(_numbers)}-{_name_of(args).replace(' ', '-')}.log"
    path.write_text((out or "") + (f"--- stderr ---\n{err}" if err else ""))
    register_log(f"{_name_of(args)} (pid {pid}, exited)", path)


def track(pid: int, what: str, log: Path | None = None) -> None:
    """A process we started that is not our child (a daemon that detached); it must be gone by the end. Its
    ``log``, if it writes one, is registered like a spawned process's."""
    _foreign[pid] = what
    st = _stat(pid)
    if st is not None:
        _born[pid] = st.start
    if log is not None:
        register_log(f"{what} (pid {pid})", log, lambda: _same(pid, _stat(pid)))


class _Stat(NamedTuple):
    state: str
    ppid: int
    pgid: int
    sid: int
    start: int


def _stat(pid: int) -> _Stat | None:
    """A process's state, parent, group, session and start time from /proc; None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = raw[raw.rindex(")") + 2 :].split()  # fields 3.. of proc(5); comm may hold spaces and parentheses
    return _Stat(f[0], int(f[1]), int(f[2]), int(f[3]), int(f[19]))


def _same(pid: int, st: _Stat | None) -> bool:
    """Whether ``pid`` is still the process we remembered (pids are reused: pid_max may be 32768)."""
    return st is not None and st.state != "Z" and _born.get(pid, st.start) == st.start


def _ours(st: _Stat) -> bool:
    """Whether a process in the group of one of our processes belongs to that group as we made it: the group
    and session are the leader's (start_new_session), and the leader, if alive, is the one we started."""
    if st.pgid not in _started or st.sid != st.pgid:
        return False
    leader = _stat(st.pgid)
    return leader is None or _born.get(st.pgid, leader.start) == leader.start


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def leftovers() -> dict[int, str]:
    """Processes that outlived what started them: pid -> description. Empty when the run left nothing behind."""
    me = os.getpid()
    found: dict[int, str] = {}
    for pid, proc in _started.items():
        if proc.poll() is None:
            found[pid] = f"started by a test and still running: {_cmdline(pid)}"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me or int(entry.name) in found:
            continue
        pid = int(entry.name)
        st = _stat(pid)
        if st is None:
            continue
        if st.state != "Z" and _ours(st):
            found[pid] = f"left in the process group of {st.pgid}: {_cmdline(pid)}"
        elif st.ppid == me:
            found[pid] = f"a child of the test run{' (unreaped)' if st.state == 'Z' else ''}: {_cmdline(pid)}"
    for pid, what in _foreign.items():
        if _same(pid, _stat(pid)):
            found[pid] = f"{what} still running"
    return found


def kill_leftovers(found: dict[int, str]) -> None:
    """SIGKILL to each process ``leftovers()`` found; our own children among them are reaped."""
    for pid in found:
        if pid in _started:  # one of ours, still running (so its pid is not reused): its whole group
            kill_group(_started[pid])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for pid in found:
        if pid in _started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                _started[pid].wait(5)
    with contextlib.suppress(ChildProcessError):  # other children nobody waited for (zombies)
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


class Procs:
    """The processes of one test, each with a log file in ``logdir``; ``close()`` stops them all (latest
    first). Use it from a fixture so they are stopped even when the test fails."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        path = self.logdir / f"{name}-{len(self.started)}.log"
        proc = spawn(args, env, log=path)
        self.started.append(proc)
        self.logs[proc.pid] = path
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def close(self) -> None:
        for proc in reversed(self.started):
            stop(proc)
