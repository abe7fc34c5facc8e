"""Start-up of the durable side, shared by `booking serve`, `booking persister` and `booking reconcile`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from sqlalchemy.engine import Engine

from engine import keys
from engine.redis import clients
from engine.service import BookingEngine
from engine.settings import Settings
from persistence import migrate
from persistence.db import database_url, make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from persistence.retention import AppointmentTidy
from persistence.waitlist_tidy import WaitlistTidy

log = logging.getLogger("booking.persistence")


def open_database(settings: Settings) -> Engine:
    """The database engine, its schema checked: the embedded SQLite file is migrated automatically; a
    configured database must already be at the revision this code knows (`booking migrate`)."""
    db = make_engine(database_url(settings))
    if settings.database_url is None:
        migrate.upgrade(db)
    else:
        migrate.ensure_current(db)
    return db


def open_database_tolerant(settings: Settings) -> Engine:
    """For the API: if the database is unreachable at start, serve anyway (bookings only need Redis) and let
    the reads that need the database answer 503 until it is back. A wrong schema still stops the start."""
    from sqlalchemy.exc import OperationalError

    try:
        return open_database(settings)
    except OperationalError as exc:
        log.warning(
            "database unreachable at start (%s): serving from Redis; audit and notification reads "
            "answer 503 until it is back",
            type(exc).__name__,
        )
        return make_engine(database_url(settings))


def sync_redis(settings: Settings) -> Any:
    """The persister's and reconciliation's Redis client: embedded, single Redis or Redis Cluster."""
    return clients.sync_redis(settings)


async def reconcile_if_needed(
    eng: BookingEngine, redis_sync: Any, db: Engine, *, force: bool = False, wait_s: float = 120.0
) -> bool:
    """Reconcile once when Redis has not been reconciled since it last lost its data. One process does it
    (a Redis lock); the others wait for the marker. Returns True if this process reconciled."""
    if not force and await eng.redis.exists(keys.META):
        return False
    if await eng.redis.set(keys.reconcile_lock(), "1", nx=True, ex=600):
        try:
            await reconcile(eng, redis_sync, db, out=lambda line: log.info("reconcile: %s", line))
        finally:
            await eng.redis.delete(keys.reconcile_lock())
        return True
    deadline = time.time() + wait_s
    while time.time() < deadline and not await eng.redis.exists(keys.META):
        await asyncio.sleep(0.2)
    return False


def persister_for(settings: Settings, redis_sync: Any, db: Engine, **kw: Any) -> Persister:
    """The persister as the settings configure it: stream trimming past idle groups, the appointment tidy."""
    tidy = AppointmentTidy(redis_sync, db, settings.appointment_retention_days)
    wl_tidy = WaitlistTidy(redis_sync, db)
    return Persister(
        redis_sync, db, group_idle_s=settings.stream_group_idle_seconds, tidy=tidy, waitlist_tidy=wl_tidy, **kw
    )


def reconcile_practices(settings: Settings, db: Engine, practice_ids: set[str]) -> set[str]:
    """Reconcile only these practices (their data was lost: persistence/shards.py), from a thread of its own
    event loop (the persister's); returns the practices put back."""

    async def go() -> set[str]:
        eng = BookingEngine(clients.async_redis(settings), settings)
        try:
            report = await reconcile(
                eng, None, db, out=lambda line: log.info("reconcile: %s", line), practices_only=practice_ids
            )
        finally:
            await eng.redis.aclose()
        return set(report.practices)

    return asyncio.run(go())


class PersisterThread:
    """The persister running beside the API (embedded mode)."""

    def __init__(self, redis_sync: Any, db: Engine, *, poll: bool, settings: Settings | None = None) -> None:
        self.stop = threading.Event()
        self.persister = persister_for(settings or Settings(), redis_sync, db, block_ms=0 if poll else 1000)
        self.thread = threading.Thread(target=self.persister.run, args=(self.stop,), name="persister", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
