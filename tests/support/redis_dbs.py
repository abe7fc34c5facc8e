"""Redis databases leased on the test Redis (the server of TEST_REDIS_URL) instead of numbers picked by hand.

A module (or a test) that needs a Redis database of its own asks for N of them (the fixtures ``redis_db``,
``redis_dbs`` and ``lease_redis_dbs`` in tests/conftest.py). A lease is an exclusive ``flock`` on one lock file per
server and database number, so two pytest-xdist workers, or two test runs on the same server, never hold the
same number; the lock goes with the process, so a killed run leaves nothing held. The numbers come from the
server's ``CONFIG GET databases`` (16 when CONFIG is refused), never 0 (where a URL without a number lands) nor
the default database TEST_REDIS_URL names (9), which belongs to the whole run: ``flush_default_once`` empties it
once per run, however many workers. A leased database is flushed when it is handed out and when it is given back;
nothing here touches a number it does not hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as redis_sync

from tests.support.databases import redis_client

LOCKS = Path(tempfile.gettempdir()) / "booking-test-redis"


def db_of(url: str) -> int:
    """The database number a ``redis://host:port/N`` URL names (0 when it names none)."""
    path = urlsplit(url).path.strip("/")
    return int(path) if path else 0


def with_db(url: str, db: int) -> str:
    """``url`` with its database number replaced by ``db``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _lock_name(url: str) -> str:
    """A file name for the server of ``url``: its host and port (never its password, nor its database)."""
    parts = urlsplit(url)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{parts.hostname or 'localhost'}_{parts.port or 6379}")


def _try_lock(path: Path) -> IO[Any] | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # held open for as long as the lease lasts
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _flush(url: str) -> None:
    with redis_client(url) as r:
        r.flushdb()


class RedisDatabases:
    """The leasable databases of the server of ``url`` (whose own database is the run's default one)."""

    def __init__(self, url: str, *, wait: float = 120, locks: Path = LOCKS, numbers: list[int] | None = None) -> None:
        self.url, self.default, self.wait, self.locks = url, db_of(url), wait, locks
        self._numbers = numbers

    def numbers(self) -> list[int]:
        """Every number a lease may hand out on this server."""
        if self._numbers is None:
            with redis_client(self.url) as r:
                try:
                    count = int(r.config_get("databases").get("databases", 16))
                except redis_sync.ResponseError:  # CONFIG renamed or refused (a managed Redis): Redis's default
                    count = 16
            self._numbers = [n for n in range(1, count) if n != self.default]
        return self._numbers

    def _lock_path(self, db: int) -> Path:
        return self.locks / f"{_lock_name(self.url)}-db{db}.lock"

    def _take(self, n: int) -> list[tuple[int, IO[Any]]]:
        """``n`` numbers locked at once, or none (all or nothing: two waiting leases never hold each other up)."""
        held: list[tuple[int, IO[Any]]] = []
        for db in self.numbers():
            f = _try_lock(self._lock_path(db))
            if f is not None:
                held.append((db, f))
                if len(held) == n:
                    return held
        for _, f in held:
            f.close()
        return []

    @contextlib.contextmanager
    def lease(self, n: int = 1) -> Iterator[list[str]]:
        """``n`` database URLs of this server held by nobody else until the block ends, flushed before and after;
        waits up to ``wait`` seconds for them and fails the test (saying why) if they never come free."""
        if n > len(self.numbers()):
            pytest.fail(f"{n} Redis databases wanted but {self.url} has only {len(self.numbers())} to lease")
        deadline = time.monotonic() + self.wait
        held = self._take(n)
        while not held:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no {n} free Redis database(s) on {self.url} after {self.wait:.0f}s (numbers {self.numbers()} "
                    f"are leased by other workers or runs; raise `databases` in its configuration or run fewer)"
                )
            time.sleep(0.1)
            held = self._take(n)
        urls = [with_db(self.url, db) for db, _ in held]
        try:
            for url in urls:
                _flush(url)
            yield urls
        finally:
            try:
                for url in urls:
                    with contextlib.suppress(redis_sync.ConnectionError):
                        _flush(url)
            finally:
                for _, f in held:
                    f.close()


def flush_default_once(url: str, locks: Path = LOCKS) -> None:
    """Flush the run's default database: at once without xdist; with it, only in the first worker that asks
    (the workers of one run share PYTEST_XDIST_TESTRUNUID), so a late worker never empties what another's
    tests already wrote there."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        _flush(url)
        return
    path = locks / f"{_lock_name(url)}-db{db_of(url)}.flushed"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        f.seek(0)
        if f.read() == run:
            return
        _flush(url)
        f.seek(0)
        f.truncate()
        f.write(run)
