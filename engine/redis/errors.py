"""The redis-py exception classes the rest of the project catches, so that no module outside ``engine.redis``
imports redis-py. Plus the reply codes redis-py leaves as a bare ``ResponseError`` (named in ``private``)."""

from __future__ import annotations

from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "AskError",
    "ClusterDownError",
    "ClusterError",
    "MovedError",
    "NoScriptError",
    "OutOfMemoryError",
    "ReadOnlyError",
    "RedisConnectionError",
    "RedisError",
    "RedisTimeoutError",
    "ResponseError",
    "SlotNotCoveredError",
    "TryAgainError",
    "key_slot",
]
