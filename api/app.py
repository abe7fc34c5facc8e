"""The Litestar app factory: the one place where clients are built."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from api import durability, render
from api.hooks import quiet_logging
from api.location import location_middleware
from api.metrics import FLUSH_S, Metrics, metrics_middleware
from api.openapi import StrictStructSchemaPlugin, allow_handlers, components, document
from api.probe import Probes
from api.problems import EXCEPTION_HANDLERS
from api.routes import app_keys, audit, booking, ops, resources, setup, waitlist, webhooks
from api.storms import ApiStorms
from engine import access
from engine.redis import asyncio_client as redis_client
from engine.redis import clients
from engine.redis.pipelined import PipelinedReads
from engine.service import BookingEngine
from engine.settings import Settings
from engine.storm import Storm

log = logging.getLogger("booking.api")
SHUTDOWN_WAIT_S = 5.0


def make_redis(settings: Settings, metrics: Metrics | None = None) -> Any:
    """The process's async Redis client: a Redis Cluster (engine/redis/clients.py), or a single Redis, the embedded
    mode's child server included (engine/redis/asyncio_client.py: a bounded blocking pool, reads retried once); with
    ``metrics``, every round trip and every wait for a pooled connection is observed."""
    if settings.redis_cluster:
        return clients.async_redis(settings)
    client = redis_client.connect(settings, observe=metrics.observe_redis if metrics is not None else None)
    if metrics is not None:
        client.connection_pool.observe_wait = metrics.redis_pool_wait.observe
    return client


async def _every(seconds: float, job: Any, name: str, first_after: float = 0.0) -> None:
    """Run ``job`` every ``seconds`` until the task is cancelled.

    A cancellation can be lost inside ``job``: on Python 3.11, ``asyncio.wait_for`` (redis-py wraps every command
    in it when ``socket_timeout`` is set) returns the command's result instead of raising CancelledError when the
    cancellation arrives in the loop step the command finishes in. The task still counts the request
    (``Task.cancelling()``), so the loop checks it after every run; otherwise it ran on for ever and the lifespan's
    shutdown, which waits for it, never finished."""
    task = asyncio.current_task()
    storm = Storm(name, log)  # one line per outage, not per run (engine/storm.py)
    await asyncio.sleep(first_after)
    while True:
        try:
            await job()
            storm.ok()
        except Exception as exc:  # noqa: BLE001 - background tidy work must never die
            storm.failed(exc)
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def _serving(
    app: Litestar,
    settings: Settings,
    redis: Any,
    background: bool,
    reconcile_on_start: bool,
    extra_startup: list[Any] | None,
) -> AsyncIterator[None]:
    from persistence import runtime
    from persistence.archive import ArchivedAppointments

    state = app.state
    state.probes = Probes()  # the operator endpoints' bounded reads (api/probe.py)
    state.storms = ApiStorms(log)  # the 503 answers' log lines, one per outage (api/storms.py)
    state.local_limits = access.LocalLimits()  # the abuse limits while Redis cannot count them
    state.redis = redis if redis is not None else make_redis(settings, state.metrics)
    state.db = await asyncio.to_thread(runtime.open_database_tolerant, settings)
    # on a single Redis, cached searches read versions on one pipelined connection (engine/redis/pipelined.py)
    reads = None if redis is not None else PipelinedReads.for_client(state.redis, state.metrics.observe_redis)
    state.pipelined_reads = reads
    # appointments past their retention are read from the database (persistence/retention.py)
    state.engine = BookingEngine(state.redis, settings, archive=ArchivedAppointments(state.db), reads=reads)
    state.engine.rt.lua.observe = state.metrics.observe_script  # booking_script_duration_seconds{script}
    # the rendered days: their share of SEARCH_CACHE_BYTES, as the engine splits it (engine/search_cache.py)
    state.rendered_days = render.RenderedDays(state.engine.searcher.rendered_bytes)
    searcher = state.engine.searcher
    state.metrics.watch_search_cache(
        lambda: (searcher.cache.stats(searcher.audit_failures), searcher.cache.bytes + state.rendered_days.bytes)
    )
    state.redis_sync = None if redis is not None and settings.embedded else runtime.sync_redis(settings)
    if state.redis_sync is not None:  # logs loudly, or refuses with REQUIRE_DURABLE_REDIS=1
        try:
            await asyncio.to_thread(durability.check_at_start, settings, state.redis_sync)
        except BaseException:  # refused to start: close what was opened
            state.probes.close()
            if reads is not None:
                await reads.aclose()
            if redis is None:
                await redis_client.close(state.redis, SHUTDOWN_WAIT_S)
            state.redis_sync.close()
            state.db.dispose()
            raise
    persister = None
    if reconcile_on_start and state.redis_sync is not None:
        await runtime.reconcile_if_needed(state.engine, state.redis_sync, state.db, force=settings.embedded)
    notifier = None
    if settings.embedded and background and state.redis_sync is not None:
        from persistence.notify.worker import NotificationWorker

        # blocking stream reads, as `booking persister` and `booking worker` on a single Redis
        persister = runtime.PersisterThread(state.redis_sync, state.db, poll=False, settings=settings)
        persister.start()
        notifier = NotificationWorker(settings, state.redis_sync, state.db)
        notifier.start()

    async def flush_metrics() -> None:
        state.metrics.flush()

    # each worker's availability cache counters reach the (multiprocess) metrics within a second, busy or idle
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(_every(FLUSH_S, flush_metrics, "metrics flush"))]
    if background:

        async def sweep() -> None:
            expired = await state.engine.expire_due_holds()
            if expired:
                state.metrics.holds_expired.inc(expired)

        tasks.append(asyncio.create_task(_every(settings.sweep_interval_seconds, sweep, "hold sweeper")))
        tasks.append(asyncio.create_task(_every(3600, state.engine.roll_horizon, "horizon roll", 60.0)))

        async def watch() -> None:
            await state.storms.watch(state.redis, state.db)

        tasks.append(asyncio.create_task(_every(1.0, watch, "storm watch")))
    for hook in extra_startup or []:
        await hook(app)
    _tune_gc()
    state.ready = True
    try:
        yield
    finally:
        state.probes.close()
        state.metrics.flush()  # what this worker counted since the last flush (api/metrics.py)
        for t in tasks:
            t.cancel()
        if tasks:  # bounded: a task that ignores its cancellation must not hold the shutdown forever
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_S)
            for t in stuck:
                log.warning("background task %s did not stop within %s s", t.get_name(), SHUTDOWN_WAIT_S)
        try:  # the search audits still queued (bounded: its retries, then counted)
            await asyncio.wait_for(state.engine.close(), SHUTDOWN_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - the shutdown goes on; what was lost is counted and logged
            log.warning("search audits not flushed at shutdown: %s", exc)
        if notifier is not None:
            await asyncio.to_thread(notifier.close)
        if persister is not None:
            await asyncio.to_thread(persister.close)
        if reads is not None:
            await reads.aclose()
        if redis is None:
            await redis_client.close(state.redis, SHUTDOWN_WAIT_S)
        if state.redis_sync is not None:
            state.redis_sync.close()
        state.db.dispose()


def create_app(
    settings: Settings | None = None,
    redis: Any = None,
    *,
    background: bool = True,
    reconcile_on_start: bool = True,
    extra_startup: list[Any] | None = None,
) -> Litestar:
    """The API. In the embedded mode (no REDIS_URL) Redis is the child server `booking serve` started
    (BOOKING_EMBEDDED_REDIS_URL), or one this app starts in the data folder and stops with its lifespan
    (api/embedded.py); the persister runs in-process on the SQLite file and reconciles at start, as `booking
    persister` does. With a real Redis, start-up reconciles once if Redis lost its data."""
    settings = (settings or Settings.from_env()).check()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from api import logs
        from api.serving import exit_with_serve

        if not logging.getLogger().handlers:  # a worker spawned, not forked, from `booking serve` (uvicorn)
            logs.configure(settings.log_format)
        exit_with_serve()
        async with contextlib.AsyncExitStack() as stack:
            conn = settings
            if settings.embedded and redis is None and settings.embedded_redis_url is None:
                from api.embedded import EmbeddedRedis

                # started from this thread, whose end (not only the process's) would stop it (PR_SET_PDEATHSIG)
                server = EmbeddedRedis(settings.data_dir)
                stack.callback(server.stop)
                conn = msgspec.structs.replace(settings, embedded_redis_url=server.start())
            async with _serving(app, conn, redis, background, reconcile_on_start, extra_startup):
                yield

    handlers = [
        *setup.ROUTES,
        *resources.ROUTES,
        *app_keys.ROUTES,
        *booking.ROUTES,
        *waitlist.ROUTES,
        *audit.ROUTES,
        *webhooks.ROUTES,
        *ops.ROUTES,
    ]
    document(handlers)
    return Litestar(
        route_handlers=[*allow_handlers(handlers), *handlers],
        plugins=[StrictStructSchemaPlugin(settings.search_max_slots)],
        lifespan=[lifespan],
        state=State({"settings": settings, "metrics": Metrics(), "ready": False}),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[metrics_middleware, location_middleware],
        cors_config=_cors(settings),
        openapi_config=OpenAPIConfig(title="Booking engine", version="1.0.0", path="/schema", components=components()),
        request_max_body_size=64 * 1024,
        debug=False,
        on_app_init=[quiet_logging],
    )


# what a browser app may send, and read of the answers, across origins (CORS_ALLOW_ORIGINS)
CORS_REQUEST_HEADERS = [
    "Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Manage-Token", "X-End-User", "X-Request-ID",
]  # fmt: skip
CORS_EXPOSED_HEADERS = [
    "Age", "ETag", "Idempotent-Replayed", "Link", "Location", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
    "Retry-After", "X-Request-ID",
]  # fmt: skip


def _cors(settings: Settings) -> CORSConfig | None:
    """CORS for browser apps, off unless CORS_ALLOW_ORIGINS names origins (``*``: any)."""
    if not settings.cors_allow_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_allow_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )


def _tune_gc() -> None:
    """Long-lived objects (app, routes, clients, caches) leave the collector's view, and young collections run
    less often: full collections of a busy worker took 25-100 ms and froze every connection it held
    (docs/benchmarks.md)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
