"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from api.problems import problem


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
    if not state.ready:
        return problem(
            503, "not_ready", "Not ready", "start-up reconciliation has not finished", headers={"Retry-After": "1"}
        )
    return Response(content={"status": "ready", "embedded": state.settings.embedded})


@get("/metrics", tags=["ops"], summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
async def metrics(request: Request[Any, Any, Any]) -> bytes:
    return request.app.state.metrics.render()  # type: ignore[no-any-return]


ROUTES = [healthz, readyz, metrics]
