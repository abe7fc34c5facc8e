"""What every engine concern shares: the Redis client and its scripts, the settings, the clock, the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from engine.model import SYSTEM, Appointment, Ctx, WaitlistRecord
from engine.scripts.registry import Lua
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.redis.pipelined import PipelinedReads

__all__ = ["SYSTEM", "AppointmentArchive", "Ctx", "Runtime"]


class AppointmentArchive(Protocol):
    """Where an appointment that left Redis (it ended more than the retention period ago) is read from: the
    durable store, provided by the API layer (persistence/archive.py), so that the engine never imports it."""

    async def appointment(self, appointment_id: str) -> tuple[Appointment, str] | None:
        """The appointment and the SHA-256 hash of its manage token; None when the store does not know it."""
        ...

    async def waitlist_entry(self, entry_id: str) -> WaitlistRecord | None:
        """A waitlist entry that ended and left Redis; None when the store does not know it."""
        ...

    async def series(self, series_id: str) -> dict[str, str] | None:
        """A booked series that left Redis (every occurrence did), as its Redis hash had it; None when unknown."""
        ...


class Runtime:
    """One Redis client with its registered scripts, the settings, the clock (tests pass a fake one), when a
    durable store is configured, the archive of appointments that left Redis, and when the app built them, the
    process's pipelined reads of the same Redis (engine/redis/pipelined.py: read-only commands, single Redis)."""

    def __init__(
        self,
        redis: Any,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        archive: AppointmentArchive | None = None,
        reads: PipelinedReads | None = None,
    ) -> None:
        self.redis = redis
        self.reads = reads
        self.archive = archive
        self.lua = Lua(redis, settings.replica_wait_ms)
        self.settings = settings
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
