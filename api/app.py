"""The Litestar app factory: the one place where clients are built."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig

from api.metrics import Metrics, metrics_middleware
from api.problems import EXCEPTION_HANDLERS
from api.routes import booking, ops, setup
from engine.service import BookingEngine
from engine.settings import Settings

log = logging.getLogger("booking.api")


def make_redis(settings: Settings) -> Any:
    if settings.redis_url is None:
        import fakeredis

        return fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer(), lua_modules=set())
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        health_check_interval=10,
        max_connections=512,
    )


async def _every(seconds: float, job: Any, name: str) -> None:
    while True:
        try:
            await job()
        except Exception as exc:  # noqa: BLE001 - background tidy work must never die
            log.warning("%s failed: %s", name, exc)
        await asyncio.sleep(seconds)


def create_app(
    settings: Settings | None = None,
    redis: Any = None,
    *,
    background: bool = True,
    extra_startup: list[Any] | None = None,
) -> Litestar:
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        state = app.state
        state.redis = redis if redis is not None else make_redis(settings)
        state.engine = BookingEngine(state.redis, settings)
        tasks: list[asyncio.Task[None]] = []
        if background:

            async def sweep() -> None:
                expired = await state.engine.expire_due_holds()
                if expired:
                    state.metrics.holds_expired.inc(expired)

            tasks.append(asyncio.create_task(_every(settings.sweep_interval_seconds, sweep, "hold sweeper")))
            tasks.append(asyncio.create_task(_every(3600, state.engine.roll_horizon, "horizon roll")))
        for hook in extra_startup or []:
            await hook(app)
        state.ready = True
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                if redis is None:
                    await state.redis.aclose()

    return Litestar(
        route_handlers=[*setup.ROUTES, *booking.ROUTES, *ops.ROUTES],
        lifespan=[lifespan],
        state=State({"settings": settings, "metrics": Metrics(), "ready": False}),
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[metrics_middleware],
        openapi_config=OpenAPIConfig(title="Booking engine", version="1.0.0", path="/schema"),
        request_max_body_size=64 * 1024,
        debug=False,
        on_app_init=[_quiet],
    )


def _quiet(config: AppConfig) -> AppConfig:
    config.logging_config = None
    return config
