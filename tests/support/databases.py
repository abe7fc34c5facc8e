"""PostgreSQL databases of the tests' own, and short-lived clients of the stores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis as redis_sync
from sqlalchemy import text
from sqlalchemy.engine import Engine

from persistence.db import make_engine
from tests.support.config import DB_SUFFIX, PG_ADMIN_URL


def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def fresh_database(name: str) -> str:
    """Drop and create a PostgreSQL database, migrated to the current schema; returns its URL."""
    from persistence import migrate

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


def q(db: Engine, sql: str, **params: Any) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(text(sql), params).all())


@contextlib.contextmanager
def database(url: str) -> Iterator[Engine]:
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


@contextlib.contextmanager
def redis_client(url: str) -> Iterator[redis_sync.Redis]:
    r = redis_sync.Redis.from_url(url, socket_connect_timeout=1)
    try:
        yield r
    finally:
        r.close()
