"""A failing test's report shows the log tails of its processes (tests/support/process_logs.py): a pytest run of
a few tests written here, in a process of its own, with no server."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from tests.support import processes
from tests.support.config import ROOT

TESTS = '''
import sys

import pytest

from tests.support import processes


def say(word: str) -> None:
    """A process that writes a line to stdout and one to stderr, then exits."""
    proc = processes.spawn([sys.executable, "-c", f"import sys; print('out-{word}'); print('err-{word}', file=sys.stderr)"])
    proc.wait(30)


@pytest.fixture(scope="module")
def server():
    """A process started by the module's first test that runs until the module ends."""
    proc = processes.spawn([sys.executable, "-c", "import time; print('server-{token}', flush=True); time.sleep(60)"])
    yield proc
    processes.stop(proc)


def test_passes_and_stops_its_process(server):
    say("before-{token}")


def test_fails_with_its_process(server):
    say("mine-{token}")
    assert False, "failing on purpose"


def test_passes_quietly():
    say("quiet-{token}")
'''


def test_a_failing_test_shows_the_tails_of_its_processes_and_of_those_still_running(tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    (tmp_path / "test_meta.py").write_text(TESTS.replace("{token}", token))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only the plugin tested
    done = processes.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.process_logs", "-p", "no:cacheprovider", "-q",
         "test_meta.py"],
        env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 1 and "1 failed, 2 passed" in out, out
    failure = out[out.index("test_fails_with_its_process") :]
    # the failing test's own process, stdout and stderr, in a section of its report
    assert f"out-mine-{token}" in failure and f"err-mine-{token}" in failure, out
    assert "log of python" in failure and "[call]" in failure, out
    # the module's server, started by an earlier test and still running, too
    assert f"server-{token}" in failure, out
    # not a process an earlier test started and that has ended, nor a later test's
    assert f"before-{token}" not in out and f"quiet-{token}" not in out, out
