"""Where the test stores are and how an app under test is configured."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]  # the checkout
# The test Redis and its default database (TEST_REDIS_URL): the run's, whose other numbers are leased
# (tests/support/redis_dbs.py).
BASE_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
# The pytest-xdist worker this process is ("gw0", "gw1", ...; "" without xdist). Workers run modules side by side
# (tests/conftest.py), so each has stores of its own: a PostgreSQL name suffix, and a default Redis database.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://root@127.0.0.1/postgres")
PG_DB = "booking_test"
# Appended to every test database's name, so that two checkouts, and two workers of one run, never share one.
DB_SUFFIX = os.environ.get("TEST_DB_SUFFIX", "") + (f"_{WORKER}" if WORKER not in ("", "gw0") else "")
ADMIN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _worker_redis_url() -> str:
    """This process's default Redis database: TEST_REDIS_URL's for the first (or only) worker; for each other
    xdist worker a database leased for the worker's whole life (the lock goes with the process), so nothing
    else leases it while the worker runs. With the server unreachable: TEST_REDIS_URL's (the ``redis_url``
    fixture then fails, saying so)."""
    if WORKER in ("", "gw0"):
        return BASE_REDIS_URL
    import atexit

    import redis

    from tests.support.redis_dbs import RedisDatabases

    held = RedisDatabases(BASE_REDIS_URL).lease(1)
    try:
        [url] = held.__enter__()
    except redis.ConnectionError:
        return BASE_REDIS_URL
    atexit.register(held.__exit__, None, None, None)  # flushed and given back when the worker ends
    return url


REDIS_URL = _worker_redis_url()


def settings_for(redis_url: str | None, **kw: Any) -> Settings:
    base: dict[str, Any] = {"redis_url": redis_url, "admin_token": ADMIN}
    base.update(kw)
    return Settings(**base)
