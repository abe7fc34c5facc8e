"""Shards: which node holds a practice, what each shard looks like (/readyz, /metrics), and the practices whose
data Redis lost (docs/operations.md, "A shard that lost its data").

A practice lost its data when the database knows it and Redis has no marker for it (``T:present``, written with
the practice and again by reconciliation once its data is back: a primary restarted empty, FLUSHALL), or when
Redis numbers its audit events below what the database already stored (a failover to a replica that missed
writes). Only such practices are reconciled; the others are not touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine import keys
from engine.codec import text
from engine.redis import clients
from persistence.tables import audit_heads, practices


def node_of(redis: Any, practice_id: str) -> str:
    """'host:port' of the node serving the practice (the primary of its slot; the one Redis otherwise)."""
    if clients.is_cluster(redis):
        return str(redis.get_node_from_key(keys.tag(practice_id)).name)
    kw = redis.connection_pool.connection_kwargs
    return f"{kw.get('host', 'embedded')}:{kw.get('port', 0)}"


def lost_practices(redis: Any, db: Engine, only: Iterable[str] | None = None) -> dict[str, str]:
    """practice id -> why, for every practice the database knows (of ``only``, when given) whose data Redis
    lost. Plain reads, one pipeline: one round trip per node."""
    wanted = None if only is None else set(only)
    if wanted is not None and not wanted:
        return {}
    with db.connect() as c:
        query = select(practices.c.id)
        heads_q = select(audit_heads.c.practice_id, audit_heads.c.last_seq)
        if wanted is not None:
            query = query.where(practices.c.id.in_(sorted(wanted)))
            heads_q = heads_q.where(audit_heads.c.practice_id.in_(sorted(wanted)))
        pids = sorted(c.execute(query).scalars())
        heads = {row[0]: int(row[1]) for row in c.execute(heads_q)}
    if not pids:
        return {}
    with redis.pipeline(transaction=False) as pipe:
        for pid in pids:
            pipe.exists(keys.practice_marker(pid))
            pipe.hget(keys.audit(pid), "seq")
        answers = pipe.execute()
    out: dict[str, str] = {}
    for i, pid in enumerate(pids):
        present, seq = answers[2 * i], int(answers[2 * i + 1] or 0)
        if not present:
            out[pid] = "marker missing (Redis restarted empty or was flushed)"
        elif seq < heads.get(pid, 0):
            out[pid] = f"audit seq {seq} below the {heads[pid]} stored (Redis lost writes)"
    return out


def relist_practices(redis: Any, db: Engine) -> int:
    """Put every practice the database knows back into ``bk:v1:practices`` (that set lives on one shard: when that
    shard lost its data, the practices of the other shards would drop out of the sweepers' and persisters' view,
    and reconciling only the lost practices would not list them again). Returns how many were missing."""
    with db.connect() as c:
        pids = sorted(c.execute(select(practices.c.id)).scalars())
    return int(redis.sadd(keys.PRACTICES, *pids)) if pids else 0


def publish_lost(redis: Any, lost: dict[str, str], now_ms: int) -> None:
    """Name them in ``bk:v1:lost`` (shown by /readyz) until reconciliation put them back."""
    if lost:
        redis.hset(keys.LOST, mapping={pid: f"{now_ms} {why}" for pid, why in lost.items()})


def forget_lost(redis: Any, practice_ids: Iterable[str]) -> None:
    done = sorted(practice_ids)
    if done:
        redis.hdel(keys.LOST, *done)


def primaries(redis: Any) -> list[Any]:
    """The nodes that serve practices: every primary of a cluster, or the one Redis (None: the client itself)."""
    if clients.is_cluster(redis):
        return sorted(redis.get_primaries(), key=lambda n: n.name)
    return [None]


def shard_state(redis: Any, node: Any) -> dict[str, Any]:
    """One shard as /readyz shows it: reachable, role, connected replicas, keys."""
    name = node.name if node is not None else node_of(redis, "")
    on = {} if node is None else {"target_nodes": node}
    try:
        role = redis.execute_command("ROLE", **on)
        size = int(redis.execute_command("DBSIZE", **on))
    except Exception as exc:  # noqa: BLE001 - any failure: unreachable
        return {"node": name, "reachable": False, "error": type(exc).__name__}
    kind = text(role[0])
    state: dict[str, Any] = {"node": name, "reachable": True, "role": kind, "keys": size}
    if kind == "master":
        state["replicas"] = len(role[2])
    return state


def lost_by_node(redis: Any) -> dict[str, list[str]]:
    """node -> the practices it lost (not yet reconciled), from ``bk:v1:lost``."""
    lost: dict[str, list[str]] = {}
    try:
        for raw in redis.hkeys(keys.LOST):
            lost.setdefault(node_of(redis, text(raw)), []).append(text(raw))
    except Exception:  # noqa: BLE001 - the shard holding bk:v1:lost may be the one that is down
        pass
    return lost


def shards(redis: Any, lag_of: dict[str, tuple[int, float]] | None = None) -> list[dict[str, Any]]:
    """Every shard: reachable, role, replicas, persister lag, and the practices it lost (not yet reconciled)."""
    lost = lost_by_node(redis)
    out = []
    for node in primaries(redis):
        state = shard_state(redis, node)
        if lag_of is not None and state["node"] in lag_of:
            state["lag_events"], state["lag_seconds"] = lag_of[state["node"]][0], round(lag_of[state["node"]][1], 3)
        if state["node"] in lost:
            state["lost_practices"] = sorted(lost[state["node"]])
        out.append(state)
    return out
