"""Whether Redis keeps what it acknowledged: a 201 survives a crash of Redis only with ``appendonly yes`` and
``appendfsync always`` (the AOF fsynced before each reply). /readyz names a node without them (a warning: still
ready); with REQUIRE_DURABLE_REDIS=1 the API refuses to start on one (docs/operations.md)."""

from __future__ import annotations

import logging
from typing import Any

from engine.codec import text
from engine.settings import ConfigError, Settings
from persistence import shards

log = logging.getLogger("booking.api")


def _config(redis: Any, node: Any) -> dict[str, str]:
    on = {} if node is None else {"target_nodes": node}
    got = redis.config_get("append*", **on)
    return {text(k): text(v) for k, v in got.items()}


def warnings(redis: Any) -> list[str]:
    """One line for each primary that runs without ``appendonly yes`` + ``appendfsync always`` (or whose
    settings cannot be read: CONFIG renamed away, as managed services do)."""
    out = []
    for node in shards.primaries(redis):
        name = node.name if node is not None else shards.node_of(redis, "")
        try:
            cfg = _config(redis, node)
        except Exception as exc:  # noqa: BLE001 - CONFIG may be disabled; say we could not tell
            out.append(f"redis {name}: could not read its AOF settings ({type(exc).__name__}: {exc})")
            continue
        aof, fsync = cfg.get("appendonly", "?"), cfg.get("appendfsync", "?")
        if aof != "yes" or fsync != "always":
            out.append(
                f"redis {name} runs with appendonly {aof}, appendfsync {fsync}: acknowledged bookings can be lost "
                "in a crash (set appendonly yes and appendfsync always)"
            )
    return out


def check_at_start(settings: Settings, redis: Any) -> None:
    """Log each warning loudly; with REQUIRE_DURABLE_REDIS=1 refuse to start (ConfigError: one line)."""
    if settings.embedded:
        return  # the embedded store keeps its own AOF in the data folder
    found = warnings(redis)
    if found and settings.require_durable_redis:
        raise ConfigError(f"REQUIRE_DURABLE_REDIS=1: {found[0]}")
    for line in found:
        log.warning("NOT DURABLE: %s", line)
