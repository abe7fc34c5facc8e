"""A failing test shows its processes' logs: a pytest plugin (tests/conftest.py loads it).

Each process a test starts through tests.support.processes writes to a log file that is registered there. When a
test fails (in its setup, its call or its teardown), the report gets one section per log of a process that test
started, or that was started earlier (a module's ``booking serve``) and is still running: the log's last lines,
printed under the failure like captured output.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.support import processes


@pytest.fixture(scope="session", autouse=True)
def _process_log_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Logs of processes started without a log file of their own go to the session's temporary folder."""
    processes.LOG_DIR = tmp_path_factory.mktemp("process-logs")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    processes.test_begins()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for title, tail in processes.log_tails():
            report.sections.append((f"{title} [{report.when}]", tail))
    return report
