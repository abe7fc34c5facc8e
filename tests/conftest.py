"""Shared fixtures. Integration tests use the real Redis (TEST_REDIS_URL, default db 9 on 127.0.0.1:6379)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from engine.settings import Settings

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://root@127.0.0.1/postgres")
PG_DB = "booking_test"
# Appended to every test database's name, so that two checkouts can run the suite side by side.
DB_SUFFIX = os.environ.get("TEST_DB_SUFFIX", "")
ADMIN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis_sync.Redis.from_url(REDIS_URL, socket_connect_timeout=1).flushdb()
    except redis_sync.ConnectionError:
        pytest.fail(f"the integration tests need Redis at {REDIS_URL} (scripts/test starts it)")
    return REDIS_URL


def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def fresh_database(name: str) -> str:
    """Drop and create a PostgreSQL database, migrated to the current schema; returns its URL."""
    from sqlalchemy import text

    from persistence import migrate
    from persistence.db import make_engine

    name += DB_SUFFIX
    admin = make_engine(PG_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = pg_url(name)
    eng = make_engine(url)
    migrate.upgrade(eng)
    eng.dispose()
    return url


@pytest.fixture(scope="session")
def database_url(redis_url: str) -> str:
    return fresh_database(PG_DB)


@pytest.fixture
def rsync(redis_url: str) -> Iterator[redis_sync.Redis]:
    r = redis_sync.Redis.from_url(redis_url)
    yield r
    r.close()


def settings_for(redis_url: str | None = None, **kw: Any) -> Settings:
    base: dict[str, Any] = {"redis_url": redis_url, "admin_token": ADMIN}
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def make_client(redis_url: str, database_url: str, tmp_path: Any) -> Iterator[Callable[..., TestClient[Any]]]:
    """A TestClient on the real Redis and PostgreSQL (or, embedded=True, the embedded default in a temporary
    data folder); keyword arguments override Settings fields."""
    opened: list[TestClient[Any]] = []

    def make(background: bool = False, embedded: bool = False, **kw: Any) -> TestClient[Any]:
        if embedded:
            kw.setdefault("data_dir", str(tmp_path / "embedded"))
        else:
            kw.setdefault("database_url", database_url)
        kw.setdefault("redis_url", None if embedded else redis_url)
        app = create_app(settings_for(**kw), background=background)
        client = TestClient(app)
        client.__enter__()
        client.headers.update(AUTH)
        opened.append(client)
        return client

    yield make
    for c in opened:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient[Any]]) -> TestClient[Any]:
    return make_client()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, url: str, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.proc = url, proc


@contextlib.contextmanager
def serving(database_url: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`booking serve --workers 2` on the real Redis (``extra_env`` may point it elsewhere), as a deployment
    would run it; stopped when the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "BOOKING_ADMIN_TOKEN": ADMIN,
        "HOLD_TTL_SECONDS": "300",
        "DATABASE_URL": database_url,
        # the load comes from one address: lift the per-client abuse limits (tests/test_access.py covers them)
        "LIMIT_LIVE_HOLDS": "100000",
        "LIMIT_HOLDS_PER_MINUTE": "1000000",
        "LIMIT_BOOKINGS_PER_MINUTE": "1000000",
    }
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("booking serve did not become ready")
        yield Server(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, database_url: str) -> Iterator[Server]:
    """`booking serve --workers 2` on the real Redis, as a deployment would run it."""
    with serving(database_url, getattr(request, "param", {}) or {}) as s:
        yield s


def next_weekday(weekday: int, after_days: int = 2) -> dt.date:
    day = dt.date.today() + dt.timedelta(days=after_days)
    while day.weekday() != weekday:
        day += dt.timedelta(days=1)
    return day


def setup_practice(
    c: Any,
    tz: str = "Europe/Paris",
    durations: tuple[int, ...] = (30,),
    practitioners: int = 1,
    weekly: list[dict[str, str]] | None = None,
    **schedule: Any,
) -> dict[str, Any]:
    """Create a practice with practitioners, visit types and one weekly schedule; works with any client
    whose post/put return httpx-like responses."""
    p = c.post("/v1/practices", json={"name": "Test practice", "timezone": tz})
    assert p.status_code == 201, p.text
    pid = p.json()["id"]
    prs = []
    for i in range(practitioners):
        r = c.post(f"/v1/practices/{pid}/practitioners", json={"name": f"Dr {i}"})
        assert r.status_code == 201, r.text
        prs.append(r.json()["id"])
    vts = {}
    for d in durations:
        r = c.post(f"/v1/practices/{pid}/visit-types", json={"name": f"{d} min", "duration_minutes": d})
        assert r.status_code == 201, r.text
        vts[d] = r.json()["id"]
    body = {"weekly": weekly or [{"day": d, "start": "08:00", "end": "12:00"} for d in WEEKDAYS], **schedule}
    for pr in prs:
        r = c.put(f"/v1/practitioners/{pr}/schedule", json=body)
        assert r.status_code == 200, r.text
    return {"practice_id": pid, "practitioners": prs, "visit_types": vts, "tz": tz}


def search(c: Any, pid: str, vt: str, day: dt.date, days: int = 1, **params: Any) -> list[dict[str, str]]:
    r = c.get(
        f"/v1/practices/{pid}/availability",
        params={"date": day.isoformat(), "visit_type_id": vt, "days": days, **params},
    )
    assert r.status_code == 200, r.text
    return r.json()["slots"]  # type: ignore[no-any-return]


def local_times(slots: list[dict[str, str]]) -> list[str]:
    """'HH:MM' of each slot start (the wall-clock part of its RFC 3339 string)."""
    return [s["start"][11:16] for s in slots]
