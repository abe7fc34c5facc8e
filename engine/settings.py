"""Settings: one frozen Struct built once from the environment and passed in."""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

from engine import limits

DEFAULT_REPLICA_WAIT_MS = 500


class ConfigError(ValueError):
    """A setting that cannot work; the command line prints its message and exits."""


def parse_offsets(text: str) -> tuple[int, ...]:
    """'24h,2h,15m,30s' -> seconds, largest first."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part[-1] not in units or not part[:-1].isdigit():
            raise ValueError(f"REMINDER_OFFSETS: {part!r} is not like 24h, 15m or 30s")
        out.append(int(part[:-1]) * units[part[-1]])
    return tuple(sorted(set(out), reverse=True))


def _non_negative(env: Mapping[str, str], name: str, default: int) -> int:
    value = int(env.get(name, str(default)))
    if value < 0:
        raise ValueError(f"{name} must be 0 or more")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "0").strip().lower()
    if value not in ("0", "1", "", "false", "true", "no", "yes"):
        raise ConfigError(f"{name}: {value!r} is not 0 or 1")
    return value in ("1", "true", "yes")


# 64 MiB per API process holds about 13,000 practitioner-days and their JSON; on by default, so that searches
# answer stale through a Redis outage (STALE_READ_SECONDS); 0 turns it off (docs/benchmarks.md: what it costs)
DEFAULT_SEARCH_CACHE_BYTES = 64 * 1024 * 1024


class Settings(msgspec.Struct, frozen=True):
    redis_url: str | None = None
    # REDIS_URL names nodes of a Redis Cluster (comma-separated); the queue then needs its own Redis
    redis_cluster: bool = False
    queue_redis_url: str | None = None
    # on a cluster: WAIT for one replica after book, cancel and reschedule, at most this long (0: never)
    replica_wait_ms: int = 0
    database_url: str | None = None
    admin_token: str | None = None
    hold_ttl_seconds: int = 300
    waitlist_offer_seconds: int = 900  # how long a waitlist offer is held for its entry
    reminder_offsets: tuple[int, ...] = (86400, 7200)
    smtp_url: str | None = None
    audit_searches: bool = True
    hold_retention_seconds: int = 86400
    sweep_interval_seconds: float = 1.0
    data_dir: str = "var"
    notify_from: str = "Booking <no-reply@booking.invalid>"
    notify_max_attempts: int = 5
    notify_retry_base_seconds: float = 2.0
    notify_lease_seconds: float = 60.0
    client_header: str | None = None
    limit_live_holds: int = 5
    limit_holds_per_minute: int = 30
    limit_bookings_per_minute: int = 10
    # an app key's own limits, over all its end users (each end user has the public client's limits above)
    limit_app_key_holds_per_minute: int = 6000
    limit_app_key_bookings_per_minute: int = 2000
    # the availability cache of each API process, in bytes (0: off)
    search_cache_bytes: int = DEFAULT_SEARCH_CACHE_BYTES
    stale_read_seconds: int = 60  # how long searches may answer from it while Redis is unreachable (0: never)
    redis_pool_size: int = 128
    redis_pool_timeout_seconds: float = 2.0
    # appointments that ended longer ago leave Redis and are read from the database (0: kept in Redis for ever)
    appointment_retention_days: int = limits.DEFAULT_APPOINTMENT_RETENTION_DAYS
    # a consumer group (not the persisters') idle this long no longer holds back stream trimming
    stream_group_idle_seconds: int = limits.DEFAULT_STREAM_GROUP_IDLE_S
    # refuse to start on a Redis without appendonly yes + appendfsync always (api/durability.py)
    require_durable_redis: bool = False
    # origins allowed to call the API from a browser (CORS); empty: CORS off
    cors_allow_origins: tuple[str, ...] = ()

    @property
    def embedded(self) -> bool:
        return self.redis_url is None

    @property
    def queue_url(self) -> str | None:
        """The standalone Redis of rq and rq-scheduler (they do not support Redis Cluster)."""
        if self.queue_redis_url is not None or self.redis_cluster:
            return self.queue_redis_url
        return self.redis_url

    def check(self) -> Settings:
        """Refuse a configuration that cannot work, with a message that says what to set."""
        if self.redis_cluster and self.redis_url is None:
            raise ConfigError("REDIS_CLUSTER=1 needs REDIS_URL: one or more nodes of the cluster, comma-separated")
        if self.redis_cluster and self.queue_redis_url is None:
            raise ConfigError(
                "REDIS_CLUSTER=1 needs QUEUE_REDIS_URL: a standalone Redis for the notification queue "
                "(rq and rq-scheduler do not support Redis Cluster)"
            )
        if 0 < self.appointment_retention_days < limits.RESTORE_PAST_DAYS or self.appointment_retention_days < 0:
            raise ConfigError(
                f"APPOINTMENT_RETENTION_DAYS must be 0 (keep appointments in Redis for ever) or at least "
                f"{limits.RESTORE_PAST_DAYS} (what reconciliation restores)"
            )
        if self.stream_group_idle_seconds < 1:
            raise ConfigError("STREAM_GROUP_IDLE_SECONDS must be at least 1")
        if not self.redis_cluster and self.redis_url is not None and "," in self.redis_url:
            raise ConfigError("REDIS_URL names several nodes: set REDIS_CLUSTER=1 for a Redis Cluster")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        ttl = int(env.get("HOLD_TTL_SECONDS", "300"))
        if ttl < 1:
            raise ValueError("HOLD_TTL_SECONDS must be at least 1")
        offer_s = int(env.get("WAITLIST_OFFER_SECONDS", "900"))
        if offer_s < 1:
            raise ValueError("WAITLIST_OFFER_SECONDS must be at least 1")
        pool_size = int(env.get("REDIS_POOL_SIZE", "128"))
        pool_timeout = float(env.get("REDIS_POOL_TIMEOUT_SECONDS", "2"))
        if pool_size < 1 or not pool_timeout > 0:
            raise ValueError("REDIS_POOL_SIZE must be at least 1 and REDIS_POOL_TIMEOUT_SECONDS above 0")
        cluster = env.get("REDIS_CLUSTER", "0").strip().lower()
        if cluster not in ("0", "1", "", "false", "true", "no", "yes"):
            raise ConfigError(f"REDIS_CLUSTER: {cluster!r} is not 0 or 1")
        is_cluster = cluster in ("1", "true", "yes")
        wait_ms = int(env.get("REPLICA_WAIT_MS") or (DEFAULT_REPLICA_WAIT_MS if is_cluster else 0))
        if wait_ms < 0:
            raise ConfigError("REPLICA_WAIT_MS must be 0 (never wait) or more")
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            redis_cluster=is_cluster,
            replica_wait_ms=wait_ms,
            queue_redis_url=env.get("QUEUE_REDIS_URL") or None,
            database_url=env.get("DATABASE_URL") or None,
            admin_token=env.get("BOOKING_ADMIN_TOKEN") or None,
            hold_ttl_seconds=ttl,
            waitlist_offer_seconds=offer_s,
            reminder_offsets=parse_offsets(env.get("REMINDER_OFFSETS", "24h,2h")),
            smtp_url=env.get("SMTP_URL") or None,
            audit_searches=env.get("BOOKING_AUDIT_SEARCHES", "1") != "0",
            data_dir=env.get("BOOKING_DATA_DIR", "var"),
            notify_from=env.get("NOTIFY_FROM", "Booking <no-reply@booking.invalid>"),
            notify_max_attempts=int(env.get("NOTIFY_MAX_ATTEMPTS", "5")),
            notify_retry_base_seconds=float(env.get("NOTIFY_RETRY_BASE_SECONDS", "2")),
            notify_lease_seconds=float(env.get("NOTIFY_LEASE_SECONDS", "60")),
            client_header=env.get("BOOKING_CLIENT_HEADER") or None,
            limit_live_holds=int(env.get("LIMIT_LIVE_HOLDS", "5")),
            limit_holds_per_minute=int(env.get("LIMIT_HOLDS_PER_MINUTE", "30")),
            limit_bookings_per_minute=int(env.get("LIMIT_BOOKINGS_PER_MINUTE", "10")),
            limit_app_key_holds_per_minute=int(env.get("LIMIT_APP_KEY_HOLDS_PER_MINUTE", "6000")),
            limit_app_key_bookings_per_minute=int(env.get("LIMIT_APP_KEY_BOOKINGS_PER_MINUTE", "2000")),
            search_cache_bytes=_non_negative(env, "SEARCH_CACHE_BYTES", DEFAULT_SEARCH_CACHE_BYTES),
            stale_read_seconds=_non_negative(env, "STALE_READ_SECONDS", 60),
            redis_pool_size=pool_size,
            redis_pool_timeout_seconds=pool_timeout,
            appointment_retention_days=int(
                env.get("APPOINTMENT_RETENTION_DAYS", str(limits.DEFAULT_APPOINTMENT_RETENTION_DAYS))
            ),
            stream_group_idle_seconds=int(
                env.get("STREAM_GROUP_IDLE_SECONDS", str(limits.DEFAULT_STREAM_GROUP_IDLE_S))
            ),
            require_durable_redis=_flag(env, "REQUIRE_DURABLE_REDIS"),
            cors_allow_origins=tuple(o.strip() for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()),
        ).check()
