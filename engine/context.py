"""What every engine concern shares: the Redis client and its scripts, the settings, the clock, the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.model import SYSTEM, Ctx
from engine.scripts.registry import Lua
from engine.settings import Settings

__all__ = ["SYSTEM", "Ctx", "Runtime"]


class Runtime:
    """One Redis client with its registered scripts, the settings and the clock (tests pass a fake one)."""

    def __init__(self, redis: Any, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.lua = Lua(redis, settings.replica_wait_ms)
        self.settings = settings
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
