"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get

from api import gauges
from api.problems import problem
from engine import keys
from engine.codec import text
from persistence.persister import HELD


@get("/healthz", tags=["ops"], summary="Process alive", include_in_schema=True)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["ops"], summary="Redis reachable and start-up reconciliation done")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    state = request.app.state
    try:
        await state.redis.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return problem(503, "not_ready", "Not ready", f"redis unreachable: {exc}", headers={"Retry-After": "1"})
    if not state.ready or not await state.redis.exists(keys.META):
        return problem(
            503, "not_ready", "Not ready", "start-up reconciliation has not finished", headers={"Retry-After": "1"}
        )
    content: dict[str, Any] = {"status": "ready", "embedded": state.settings.embedded}
    held = await state.redis.hgetall(HELD)
    if held:  # events the persister holds back until an operator looks (docs/operations.md)
        content["persister_held"] = {text(k): text(v) for k, v in sorted(held.items())}
    return Response(content=content)


@get("/metrics", tags=["ops"], summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
async def metrics(request: Request[Any, Any, Any]) -> bytes:
    """Counters and histograms of every worker (docs/operations.md), then gauges read at scrape time; a
    dependency that does not answer leaves its gauges out, never the scrape."""
    state = request.app.state
    scraped: list[Any] = []
    if state.redis_sync is not None:
        try:
            scraped += await asyncio.to_thread(lambda: list(gauges.redis_families(state.redis_sync)))
        except Exception:  # noqa: BLE001 - metrics must answer even when Redis does not
            pass
    try:
        scraped += await asyncio.to_thread(lambda: list(gauges.database_families(state.db)))
    except Exception:  # noqa: BLE001 - the database may be down; metrics still answer
        pass
    return state.metrics.render(scraped)  # type: ignore[no-any-return]


ROUTES = [healthz, readyz, metrics]
