"""Fixtures, and the session's end-of-run checks. Helpers and harnesses live in tests/support: import them from
there, never from this file. Integration tests use the real Redis (TEST_REDIS_URL, default db 9 on
127.0.0.1:6379) and PostgreSQL (TEST_PG_ADMIN_URL)."""

from __future__ import annotations

import contextlib
import faulthandler
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from tests.support import processes, script_shapes
from tests.support.config import AUTH, BASE_REDIS_URL, PG_DB, REDIS_URL, settings_for
from tests.support.databases import fresh_database
from tests.support.processes import Procs
from tests.support.redis_dbs import RedisDatabases, flush_default_once
from tests.support.servers import Server, serve_env, start_serve

# a failing test's report shows the log tails of the processes it started (or that still run)
pytest_plugins = ["tests.support.process_logs"]


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        flush_default_once(REDIS_URL)
    except redis_sync.ConnectionError:
        pytest.fail(f"the integration tests need Redis at {REDIS_URL} (scripts/test starts it)")
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_leases(redis_url: str) -> RedisDatabases:
    """The Redis databases this worker may lease on the test Redis (tests/support/redis_dbs.py): every number but
    TEST_REDIS_URL's and those the other workers hold (a worker's default, tests/support/config.py, is a lease)."""
    return RedisDatabases(BASE_REDIS_URL)


@pytest.fixture(scope="module")
def redis_dbs(redis_leases: RedisDatabases) -> Iterator[Callable[[int], list[str]]]:
    """``redis_dbs(n)``: the URLs of ``n`` Redis databases of the module's own (no other module or worker uses
    them meanwhile), flushed now and when the module's last test is done."""
    with contextlib.ExitStack() as held:
        yield lambda n=1: held.enter_context(redis_leases.lease(n))


@pytest.fixture(scope="module")
def redis_db(redis_dbs: Callable[[int], list[str]]) -> str:
    """The URL of a Redis database of the module's own (see ``redis_dbs``)."""
    return redis_dbs(1)[0]


@pytest.fixture
def queue_redis(redis_db: str) -> Iterator[redis_sync.Redis]:
    """A client of the module's own Redis database, for rq's queue: standalone also where ``rsync`` and ``world``
    are a cluster's (tests/system/test_cluster.py runs tests of tests/integration there)."""
    r = redis_sync.Redis.from_url(redis_db)
    yield r
    r.close()


@pytest.fixture
def lease_redis_dbs(redis_leases: RedisDatabases) -> Iterator[Callable[[int], list[str]]]:
    """``redis_dbs`` for one test: the databases are given back (flushed) when the test ends."""
    with contextlib.ExitStack() as held:
        yield lambda n=1: held.enter_context(redis_leases.lease(n))


@pytest.fixture(scope="session")
def database_url(redis_url: str) -> str:
    return fresh_database(PG_DB)


@pytest.fixture
def rsync(redis_url: str) -> Iterator[redis_sync.Redis]:
    r = redis_sync.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
def make_client(redis_url: str, database_url: str, tmp_path: Any) -> Iterator[Callable[..., TestClient[Any]]]:
    """A TestClient on the real Redis and PostgreSQL (or, embedded=True, the embedded default in a temporary
    data folder); keyword arguments override Settings fields. Every client is closed at teardown, even when
    another one fails to."""
    with contextlib.ExitStack() as opened:

        def make(background: bool = False, embedded: bool = False, **kw: Any) -> TestClient[Any]:
            if embedded:
                kw.setdefault("data_dir", str(tmp_path / "embedded"))
            else:
                kw.setdefault("database_url", database_url)
            url = None if embedded else kw.pop("redis_url", redis_url)
            app = create_app(settings_for(url, **kw), background=background)
            client = opened.enter_context(TestClient(app))
            client.headers.update(AUTH)
            return client

        yield make


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """The processes of one test (tests.support.processes.Procs), stopped at its end whatever its outcome."""
    p = Procs(tmp_path)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient[Any]]) -> TestClient[Any]:
    return make_client()


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`booking serve --workers 2` on the real Redis, as a deployment would run it (per-client limits lifted:
    the load comes from one address)."""
    procs = Procs(tmp_path_factory.mktemp("server"))
    try:
        yield start_serve(procs, serve_env(REDIS_URL, database_url, **(getattr(request, "param", {}) or {})))
    finally:
        procs.close()


# ------------------------------------------------------------------------------------------------ two workers
# scripts/test runs the suite on two pytest-xdist workers (`-n 2 --dist loadscope`). Each worker has stores of its
# own (tests/support/config.py: its PostgreSQL database names, its default Redis database; other Redis databases
# are leased), so modules may run side by side: a work unit is one module, handed to whichever worker is free, the
# longest first (LONGEST: measured; the rest after them, the most tests first), so that the run does not end with
# one long module on one worker while the other idles. The modules on the local Redis Cluster
# (tests/cluster_support.py, started once per worker session) form one unit, so that only one worker starts it.
# Within a unit, tests run one at a time in file order, as without xdist.
# What the earlier two-group scheduler kept apart stays apart: the system tests (tests/system: processes, kill -9,
# the cluster; their timeouts are tuned for one of them at a time) run one unit at a time, and so do the two that
# wait for real time (WAITING); one of each may run side by side, as before. A worker whose best unit is held back
# takes the next one that is not, or waits until the other worker's unit is done.
LONGEST = (  # seconds of two runs (2026-12-06, 2 cores at load ~8.5 / ~5.3): 604/320, 506/342, 224/261, 225/181,
    # 224/115, 91/46, 91/60, 59/27, 33/27, 43/25, 42/-, 38/20
    "test_openapi_contract.py",
    "cluster",
    "test_notifications.py",
    "test_bench_smoke.py",
    "test_faults.py",
    "test_embedded.py",
    "test_webhooks.py",
    "test_cli_errors.py",
    "test_persistence.py",
    "test_lua_lines.py",
    "test_practice_series.py",
    "test_app_keys.py",
)
CLUSTER = "tests/system/test_cluster"  # and test_shares.py, which runs its tests on the cluster too
WAITING = ("test_notifications.py", "test_bench_smoke.py")


def _unit(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    if module.startswith(CLUSTER) or module == "tests/system/test_shares.py":
        return "cluster"
    return module


def _rank(unit: str) -> int:
    name = unit.rsplit("/", 1)[-1]
    return LONGEST.index(name) if name in LONGEST else len(LONGEST)


def _kind(unit: str) -> str:
    """Kind "waiting", "system" or "" (may run beside anything): units of one kind never run side by side."""
    if unit.rsplit("/", 1)[-1] in WAITING:
        return "waiting"
    return "system" if unit == "cluster" or unit.startswith("tests/system/") else ""


def _pick(queue: list[str], running_elsewhere: set[str]) -> str | None:
    """The unit to hand out next: the first of the best rank (among the unmeasured ones the queue's order) whose
    kind does not run on another worker; a system unit first, so that the system tests, one at a time, start
    early and follow each other without a gap. None: every unit left waits for the other worker."""
    busy = {_kind(u) for u in running_elsewhere} - {""}
    free = [u for u in queue if _kind(u) not in busy]
    if not free:
        return None
    return min(free, key=lambda u: (_kind(u) != "system", _rank(u)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Units as above, the longest handed out first, system and waiting units one at a time."""
    if config.getvalue("dist") not in ("load", "loadscope"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Modules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

        def _running(self, node: Any) -> set[str]:
            """The units handed to ``node`` with tests not yet done."""
            return {u for u, tests in self.assigned_work.get(node, {}).items() if not all(tests.values())}

        def _assign_work_unit(self, node: Any) -> None:
            elsewhere = set().union(*(self._running(n) for n in self.assigned_work if n is not node))
            unit = _pick(list(self.workqueue), elsewhere)
            if unit is None:
                return  # tried again when a test of another worker is done (mark_test_complete)
            self.workqueue.move_to_end(unit, last=False)
            super()._assign_work_unit(node)

        def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
            super().mark_test_complete(node, item_index, duration)
            for other in list(self.assigned_work):  # what was held back for node's unit may go to an idle worker
                if other is not node:
                    self._reschedule(other)

    return Modules(config, log)


# ------------------------------------------------------------------------------------------------ end of run
def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process only hands tests to xdist workers (each worker checks what its tests started)."""
    return config.pluginmanager.getplugin("dsession") is not None


_worker_leftovers: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker's finding, reported by the controller (a worker's exit status does not reach the run's)."""
    found = getattr(node, "workeroutput", {}).get("leftovers")
    if found:
        _worker_leftovers.append(found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Nothing a test started may outlive the run: a process still running, one left in the process group of a
    process a test started, or any child of this pytest process fails the session (after being killed)."""
    if _xdist_controller(session.config):
        if _worker_leftovers:
            sys.stderr.write("".join(_worker_leftovers))
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    found = processes.leftovers()
    if not found:
        return
    processes.kill_leftovers(found)
    lines = "\n".join(f"  pid {pid}: {what}" for pid, what in sorted(found.items()))
    message = f"\nERROR: {len(found)} process(es) outlived the tests that started them (killed now):\n{lines}\n"
    sys.stderr.write(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if hasattr(session.config, "workeroutput"):  # an xdist worker: tell the controller
        session.config.workeroutput["leftovers"] = message


def pytest_unconfigure(config: pytest.Config) -> None:
    """A test that timed out (pytest-timeout fails it with SIGALRM and goes on) can leave a thread blocked for
    good, such as a TestClient's event loop stuck in its app's shutdown; the interpreter would wait for it at
    exit and the run would never end. If such a thread is alive now and the process is still here a minute
    later, faulthandler prints every thread's stack and exits with status 1."""
    if any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        faulthandler.dump_traceback_later(60, exit=True, file=sys.__stderr__)


@pytest.fixture(scope="session", autouse=True)
def _script_calls_match_their_headers() -> Iterator[None]:
    """Every script call of the run is checked against its script's header (tests/support/script_shapes.py)."""
    with script_shapes.checked():
        yield
