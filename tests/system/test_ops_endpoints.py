"""The operator endpoints never hang (issue 21 item 6): /readyz and /metrics answer within 1 s while Redis is
frozen (SIGSTOP of the test's own redis-server), a node that does not answer reports ``timeout``, and
``booking_redis_up{node}`` / ``booking_build_info`` are always in a scrape. /readyz names a Redis without
``appendonly yes`` + ``appendfsync always``; REQUIRE_DURABLE_REDIS=1 refuses to start on one."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.gauges import package_version
from engine.settings import ConfigError
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.processes import Procs
from tests.support.servers import RedisServer, run_cli, serve_env

pytestmark = [pytest.mark.integration]
BUILD_INFO = re.compile(r'^booking_build_info\{[^}]*version="' + re.escape(package_version()) + r'"[^}]*\} 1\.0$', re.M)


@pytest.fixture(scope="module")
def db_url() -> str:
    return fresh_database("booking_ops")


def _client(rs: RedisServer, db_url: str, **kw: Any) -> TestClient[Any]:
    client = TestClient(create_app(settings_for(rs.url, database_url=db_url, **kw), background=False))
    client.headers.update(AUTH)
    return client


def _timed(c: TestClient[Any], path: str) -> tuple[float, Any]:
    started = time.monotonic()
    r = c.get(path)
    return time.monotonic() - started, r


def test_readyz_and_metrics_answer_within_a_second_while_redis_is_frozen(
    procs: Procs, tmp_path: Path, db_url: str
) -> None:
    rs = RedisServer(procs, tmp_path / "redis", aof=False)
    rs.start()
    assert rs.proc is not None
    node = f"127.0.0.1:{rs.port}"
    with _client(rs, db_url) as c:
        assert c.get("/readyz").status_code == 200
        body = c.get("/metrics").text
        assert f'booking_redis_up{{node="{node}"}} 1.0' in body
        assert BUILD_INFO.search(body), body
        os.kill(rs.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(3):  # again and again: a read left hanging is joined, not piled up
                took, r = _timed(c, "/readyz")
                assert took < 1.0, f"/readyz took {took:.2f} s"
                assert r.status_code == 503
                assert r.json()["code"] == "not_ready"
                assert {"node": node, "error": "timeout"} in r.json()["errors"]
                took, r = _timed(c, "/metrics")
                assert took < 1.0, f"/metrics took {took:.2f} s"
                assert r.status_code == 200
                assert f'booking_redis_up{{node="{node}"}} 0.0' in r.text
                assert BUILD_INFO.search(r.text)
            assert c.get("/healthz").status_code == 200
        finally:
            os.kill(rs.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 15
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "/readyz did not recover after SIGCONT"
            time.sleep(0.2)
        assert f'booking_redis_up{{node="{node}"}} 1.0' in c.get("/metrics").text


def test_metrics_report_a_stopped_redis_as_down(procs: Procs, tmp_path: Path, db_url: str) -> None:
    rs = RedisServer(procs, tmp_path / "redis", aof=False)
    rs.start()
    with _client(rs, db_url) as c:
        rs.kill9()
        took, r = _timed(c, "/metrics")
        assert took < 1.0 and r.status_code == 200
        assert f'booking_redis_up{{node="127.0.0.1:{rs.port}"}} 0.0' in r.text
        assert c.get("/readyz").status_code == 503


def test_readyz_warns_of_a_redis_that_can_lose_acknowledged_writes(procs: Procs, tmp_path: Path, db_url: str) -> None:
    loose = RedisServer(procs, tmp_path / "loose", aof=False)
    loose.start()
    with _client(loose, db_url) as c:
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        (warning,) = r.json()["warnings"]
        assert f"127.0.0.1:{loose.port}" in warning and "appendonly no" in warning
    durable = RedisServer(procs, tmp_path / "durable", aof=True)
    durable.start()
    with _client(durable, db_url, require_durable_redis=True) as c:  # starts: AOF always
        r = c.get("/readyz")
        assert r.status_code == 200 and "warnings" not in r.json()


def test_require_durable_redis_refuses_to_start_on_a_redis_without_aof_always(
    procs: Procs, tmp_path: Path, db_url: str
) -> None:
    rs = RedisServer(procs, tmp_path / "redis", aof=False)
    rs.start()
    with pytest.raises(BaseException) as raised:  # the lifespan's error, in anyio's exception group
        with _client(rs, db_url, require_durable_redis=True):
            pass
    assert _config_errors(raised.value) and "appendonly no" in str(_config_errors(raised.value)[0])
    env = serve_env(rs.url, db_url, REQUIRE_DURABLE_REDIS="1")
    done = run_cli(env, "serve", "--port", "1", timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "REQUIRE_DURABLE_REDIS=1" in lines[0] and "appendonly no" in lines[0], done.stderr


def _config_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, ConfigError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [found for sub in exc.exceptions for found in _config_errors(sub)]
    return []
