"""Operations: liveness, readiness, metrics. /readyz and /metrics answer within a second whatever Redis does:
their blocking reads run as bounded probes (api/probe.py) and a node that does not answer reports ``timeout``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response, get

from api import durability, gauges
from api.probe import ProbeTimeoutError
from api.problems import problem
from engine import keys
from engine.codec import text
from persistence import shards
from persistence.persister import HELD

# Budgets, in seconds, within the 1 s promised (API.md "Operations"): the probes run side by side.
PROBE_BUDGET_S = 0.6  # a node's ROLE/DBSIZE, the lag and lost-practice reads, the AOF settings
READY_BUDGET_S = 0.85  # the whole of /readyz, the async reads included
SCRAPE_BUDGET_S = 0.7  # the scrape-time gauges (Redis, database) of /metrics
DURABILITY_EVERY_S = 30.0  # the AOF settings are read again at most this often per process


@get("/healthz", tags=["ops"], summary="Process alive", include_in_schema=True)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["ops"], summary="Redis reachable and start-up reconciliation done")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """503 while no shard answers or start-up reconciliation has not finished; otherwise 200, each shard listed
    (reachable, role, lag, lost practices) with ``status`` ``degraded`` while one is not well: the shards that
    answer keep serving their practices (docs/operations.md). A node that does not answer within the budget
    reports ``"error": "timeout"``; ``warnings`` names a Redis that can lose acknowledged writes in a crash."""
    state = request.app.state
    try:
        return await asyncio.wait_for(_readiness(state), READY_BUDGET_S)
    except TimeoutError:
        nodes = [{"node": name, "error": "timeout"} for name in _node_names(state)]
        return problem(
            503, "not_ready", "Not ready", f"redis did not answer within {READY_BUDGET_S:g} s (timeout)",
            headers={"Retry-After": "1"}, errs=nodes,
        )  # fmt: skip


async def _readiness(state: Any) -> Response[Any]:
    listed = None if state.settings.embedded or state.redis_sync is None else await _shards(state)
    if listed is None:
        try:
            await state.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return problem(503, "not_ready", "Not ready", f"redis unreachable: {exc}", headers={"Retry-After": "1"})
    elif not any(s["reachable"] for s in listed):
        why = ", ".join(f"{s['node']}: {s.get('error', 'unreachable')}" for s in listed)
        return problem(
            503, "not_ready", "Not ready", f"redis unreachable: no shard answers ({why})", headers={"Retry-After": "1"},
            errs=[{"node": s["node"], "error": s.get("error", "unreachable")} for s in listed],
        )  # fmt: skip
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
        warnings = await _durability(state)
        if warnings:  # still ready: a warning, not a failure (REQUIRE_DURABLE_REDIS=1 refuses to start instead)
            content["warnings"] = warnings
    if held:  # events the persister holds back until an operator looks (docs/operations.md)
        content["persister_held"] = {text(k): text(v) for k, v in sorted(held.items())}
    # events the persister set aside (docs/operations.md, "Quarantine"): named, and readiness unchanged (this API
    # serves right; the operator fixes the cause and replays them with `booking reconcile --replay-quarantine`)
    content["quarantined"] = len(aside)
    if aside:
        content["persister_quarantined"] = {text(k): text(v) for k, v in sorted(aside.items())}
    return Response(content=content)


LAG_EVERY_S = 5.0  # /readyz reads the persister lag per shard at most this often per process (a pass over practices)


def _node_names(state: Any) -> list[str]:
    """The nodes /readyz and /metrics report on, known without asking Redis (the URL, the cluster's slot map)."""
    if state.redis_sync is None or state.settings.embedded:
        return ["embedded"]
    return [node.name if node is not None else shards.node_of(state.redis_sync, "") for node in _primaries(state)]


def _primaries(state: Any) -> list[Any]:
    return shards.primaries(state.redis_sync)


async def _node_states(state: Any) -> list[dict[str, Any]]:
    """Each primary's ROLE and DBSIZE, probed side by side: a node that does not answer reports ``timeout``."""

    async def one(node: Any) -> dict[str, Any]:
        name = node.name if node is not None else shards.node_of(state.redis_sync, "")
        try:
            return await state.probes[f"node:{name}"].run(  # type: ignore[no-any-return]
                lambda: shards.shard_state(state.redis_sync, node), PROBE_BUDGET_S
            )
        except ProbeTimeoutError:
            return {"node": name, "reachable": False, "error": "timeout"}

    return list(await asyncio.gather(*(one(node) for node in _primaries(state))))


async def _shards(state: Any) -> list[dict[str, Any]]:
    """Every shard as /readyz lists it: its state, its persister lag and its lost practices (these two from one
    bounded probe; the previous figures while it runs late)."""
    states: list[dict[str, Any]]  # gather's overloads answer Any here: the type of _node_states
    states, extras = await asyncio.gather(_node_states(state), _lag_and_lost(state))
    lag_of, lost = extras
    for s in states:
        if s["node"] in lag_of:
            s["lag_events"], s["lag_seconds"] = lag_of[s["node"]][0], round(lag_of[s["node"]][1], 3)
        if s["node"] in lost:
            s["lost_practices"] = sorted(lost[s["node"]])
    return states


async def _lag_and_lost(state: Any) -> tuple[dict[str, tuple[int, float]], dict[str, list[str]]]:
    def read() -> tuple[dict[str, tuple[int, float]], dict[str, list[str]]]:
        now = time.monotonic()
        cached = getattr(state, "shard_lag", None)
        if cached is None or now - cached[0] > LAG_EVERY_S:
            try:
                cached = (now, gauges.node_lag(state.redis_sync))
            except Exception:  # noqa: BLE001 - the practice set's shard is down: lag unknown
                cached = (now, {})
            state.shard_lag = cached
        return cached[1], shards.lost_by_node(state.redis_sync)

    probe = state.probes["lag"]
    try:
        return await probe.run(read, PROBE_BUDGET_S)  # type: ignore[no-any-return]
    except ProbeTimeoutError:
        return probe.last if probe.last is not None else ({}, {})


async def _durability(state: Any) -> list[str]:
    """The AOF warnings (api/durability.py), read again at most every DURABILITY_EVERY_S."""
    probe = state.probes["durability"]
    if probe.last is not None and time.monotonic() - probe.last_at < DURABILITY_EVERY_S:
        return probe.last  # type: ignore[no-any-return]
    try:
        return await probe.run(lambda: durability.warnings(state.redis_sync), PROBE_BUDGET_S)  # type: ignore[no-any-return]
    except ProbeTimeoutError:
        return probe.last or []


@get("/metrics", tags=["ops"], summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
async def metrics(request: Request[Any, Any, Any]) -> bytes:
    """Counters and histograms of every worker (docs/operations.md), then gauges read at scrape time within a
    budget: a dependency that does not answer in time leaves its last sampled gauges (or none), never the scrape.
    ``booking_redis_up{node}`` is 1 for each node that answered its probe, 0 otherwise (down or ``timeout``)."""
    state = request.app.state
    scraped: list[Any] = [gauges.build_info()]

    async def sampled(name: str, read: Any) -> list[Any]:
        probe = state.probes[name]
        try:
            return await probe.run(lambda: list(read()), SCRAPE_BUDGET_S)  # type: ignore[no-any-return]
        except ProbeTimeoutError:
            return probe.last or []
        except Exception:  # noqa: BLE001 - metrics must answer even when Redis or the database does not
            return []

    jobs = [sampled("db-gauges", lambda: gauges.database_families(state.db))]
    if state.redis_sync is not None:
        jobs.append(sampled("redis-gauges", lambda: gauges.redis_families(state.redis_sync)))
    up, *families = await asyncio.gather(_redis_up(state), *jobs)
    scraped.append(up)
    for got in families:
        scraped += got
    return state.metrics.render(scraped)  # type: ignore[no-any-return]


async def _redis_up(state: Any) -> Any:
    if state.redis_sync is None or state.settings.embedded:
        try:
            await asyncio.wait_for(state.redis.ping(), PROBE_BUDGET_S)
            return gauges.redis_up({"embedded": True})
        except Exception:  # noqa: BLE001 - down or no answer in time
            return gauges.redis_up({"embedded": False})
    return gauges.redis_up({s["node"]: bool(s.get("reachable")) for s in await _node_states(state)})


ROUTES = [healthz, readyz, metrics]
