"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response, get

from api import gauges
from api.problems import problem
from engine import keys
from engine.codec import text
from persistence import shards
from persistence.persister import HELD


@get("/healthz", tags=["ops"], summary="Process alive", include_in_schema=True)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["ops"], summary="Redis reachable and start-up reconciliation done")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """503 while no shard answers or start-up reconciliation has not finished; otherwise 200, each shard listed
    (reachable, role, lag, lost practices) with ``status`` ``degraded`` while one is not well: the shards that
    answer keep serving their practices (docs/operations.md)."""
    state = request.app.state
    listed = None if state.settings.embedded or state.redis_sync is None else await asyncio.to_thread(_shards, state)
    if listed is None:
        try:
            await state.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return problem(503, "not_ready", "Not ready", f"redis unreachable: {exc}", headers={"Retry-After": "1"})
    elif not any(s["reachable"] for s in listed):
        return problem(
            503, "not_ready", "Not ready", "redis unreachable: no shard answers", headers={"Retry-After": "1"}
        )
    some_down = listed is not None and not all(s["reachable"] for s in listed)
    try:
        reconciled = await state.redis.exists(keys.META)
        held = await state.redis.hgetall(HELD)
        aside = await state.redis.hgetall(keys.PERSIST_QUARANTINED)
    except Exception:  # the shard holding them is down: the others serve on
        if not some_down:
            raise
        reconciled, held, aside = True, {}, {}
    partial = not reconciled and listed is not None and len(listed) > 1 and any(s.get("keys") for s in listed)
    if not state.ready or not (reconciled or partial):  # a shard that lost the marker: see lost_practices
        return problem(
            503, "not_ready", "Not ready", "start-up reconciliation has not finished", headers={"Retry-After": "1"}
        )
    content: dict[str, Any] = {"status": "ready", "embedded": state.settings.embedded}
    if listed is not None:
        content["shards"] = listed
        cluster = len(listed) > 1
        if partial or some_down or any(s.get("lost_practices") or (cluster and not s.get("replicas")) for s in listed):
            content["status"] = "degraded"
    if held:  # events the persister holds back until an operator looks (docs/operations.md)
        content["persister_held"] = {text(k): text(v) for k, v in sorted(held.items())}
    # events the persister set aside (docs/operations.md, "Quarantine"): named, and readiness unchanged (this API
    # serves right; the operator fixes the cause and replays them with `booking reconcile --replay-quarantine`)
    content["quarantined"] = len(aside)
    if aside:
        content["persister_quarantined"] = {text(k): text(v) for k, v in sorted(aside.items())}
    return Response(content=content)


LAG_EVERY_S = 5.0  # /readyz reads the persister lag per shard at most this often per process (a pass over practices)


def _shards(state: Any) -> list[dict[str, Any]]:
    now = time.monotonic()
    cached = getattr(state, "shard_lag", None)
    if cached is None or now - cached[0] > LAG_EVERY_S:
        try:
            cached = (now, gauges.node_lag(state.redis_sync))
        except Exception:  # noqa: BLE001 - the practice set's shard is down: lag unknown
            cached = (now, {})
        state.shard_lag = cached
    return shards.shards(state.redis_sync, cached[1])


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
