"""Fixtures of the integration tier only (tests/conftest.py holds the rest)."""

from __future__ import annotations

import pytest
import redis as redis_sync

from engine import keys


@pytest.fixture(scope="module", autouse=True)
def _fresh_client_limits(redis_url: str) -> None:
    """Each module starts with the public clients' abuse-limit windows empty. A worker runs its modules one after
    another on its default database, and every TestClient request comes from one address: a module that joined
    the waitlist 10 times left the next one, run within the same minute, answered 429 (seen in a fresh-clone run:
    test_idempotency_scope, test_generated_client). Only those counters go: nothing else is cleared."""
    r = redis_sync.Redis.from_url(redis_url)
    try:
        found = list(r.scan_iter(match=f"{keys.ROOT}:{{c:*", count=1000))
        if found:
            r.delete(*found)
    finally:
        r.close()
