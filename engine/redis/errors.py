"""The redis-py exception classes the rest of the project catches, so that no module outside ``engine.redis``
imports redis-py. Plus the reply codes redis-py leaves as a bare ``ResponseError`` (named in ``private``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

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
    "describe_failure",
    "key_slot",
    "shown_url",
]


def shown_url(url: str) -> str:
    """A Redis URL (or comma-separated node URLs) as a message may show it: without a password."""
    out = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.password is not None:
            user = parts.username or ""
            host = parts.hostname or ""
            netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=netloc)
        out.append(urlunsplit(parts))
    return ",".join(out)


def describe_failure(exc: BaseException, urls: dict[str, str | None]) -> str | None:
    """One line for an operator when a Redis cannot be reached: which one (its setting and URL, no password),
    why, what to do. ``urls``: setting name -> URL; the one whose host:port the error names, else the first.
    None when ``exc`` is not a failure to reach Redis."""
    if not isinstance(exc, (RedisConnectionError, RedisTimeoutError, ClusterError)):
        return None
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    named = {k: v for k, v in urls.items() if v}
    name, url = next(iter(named.items()), ("REDIS_URL", ""))
    for candidate, value in named.items():
        if any(f"{urlsplit(u.strip()).hostname}:{urlsplit(u.strip()).port or 6379}" in why for u in value.split(",")):
            name, url = candidate, value
            break
    return f"cannot reach Redis at {shown_url(url)} ({name}): {why}; start it or correct {name}"
