"""The API's 503 answers as retry storms (engine/storm.py): while Redis or the database is down, every request
that needs it answers 503, and the log says so once when it starts, once a minute while it lasts, and once when
it is over. A request cannot tell that its dependency is back (the next one simply succeeds), so while a storm
lasts the lifespan's ``watch`` asks the dependency itself, once a second, and ends the storm when it answers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import text

from engine.storm import Storm


class ApiStorms:
    def __init__(self, log: logging.Logger) -> None:
        self.redis = Storm("API answers 503: redis", log)
        self.database = Storm("API answers 503: database", log)

    async def watch(self, redis: Any, db: Any) -> None:
        """One look at each dependency in a storm; the storm ends when it answers (calm: nothing is sent)."""
        if self.redis.active:
            try:
                await redis.ping()
            except Exception:  # noqa: BLE001 - still down: its storm goes on (one summary a minute)
                pass
            else:
                self.redis.ok()
        if self.database.active:
            try:
                await asyncio.to_thread(_select_one, db)
            except Exception:  # noqa: BLE001 - still down
                pass
            else:
                self.database.ok()


def _select_one(db: Any) -> None:
    with db.connect() as c:
        c.execute(text("SELECT 1"))


def failed(request: Any, dependency: str, why: str) -> None:
    """A 503 for ``dependency`` ("redis" or "database"): its storm's line, if one is due."""
    api_storms: ApiStorms | None = getattr(request.app.state, "storms", None)
    if api_storms is None:  # outside the lifespan
        logging.getLogger("booking.api").warning("%s", why)
        return
    getattr(api_storms, dependency).failed(why)
