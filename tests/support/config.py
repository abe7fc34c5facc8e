"""Where the test stores are and how an app under test is configured."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]  # the checkout
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://root@127.0.0.1/postgres")
PG_DB = "booking_test"
# Appended to every test database's name, so that two checkouts can run the suite side by side.
DB_SUFFIX = os.environ.get("TEST_DB_SUFFIX", "")
ADMIN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def settings_for(redis_url: str | None, **kw: Any) -> Settings:
    base: dict[str, Any] = {"redis_url": redis_url, "admin_token": ADMIN}
    base.update(kw)
    return Settings(**base)
