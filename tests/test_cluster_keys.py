"""Static proofs for Redis Cluster, no server needed: every script call's KEYS hash to one slot whatever the
ids, and the cluster configuration (REDIS_CLUSTER, REDIS_URL node list, QUEUE_REDIS_URL) is checked at start."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from redis.crc import key_slot

from engine import clients, ids, keys, scripts
from engine.model import SYSTEM, Appointment, Patient
from engine.scripts.registry import NAMES, Lua
from engine.settings import ConfigError, Settings

REPLIES: dict[str, Any] = {
    "book": ["OK", "vt", 1, 2],
    "cancel": ["OK", 2],
    "reschedule": ["OK", 2],
    "search": [[]],
    "schedule": 1,
    "expire": 0,
    "restore_seq": -1,
}


class Recorder(Lua):
    """A Lua that records each script's KEYS instead of running it, as a cluster client would route them."""

    def __init__(self) -> None:
        self.redis = None
        self.cluster = True  # the cluster paths (apply_day without a pipeline)
        self.seen: list[tuple[str, list[str]]] = []

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        assert client is None, f"{name}: a script call inside a pipeline (a cluster pipeline refuses EVALSHA)"
        self.seen.append((name, list(keys)))
        return REPLIES.get(name, ["OK"])


def slot(key: str) -> int:
    return key_slot(key.encode())


async def every_script(lua: Recorder, n: int) -> None:
    """Call every script function with fresh random ids ``n`` times."""
    for _ in range(n):
        pid = ids.new_practice_id()
        pr, pr2 = ids.new_practitioner_id(pid), ids.new_practitioner_id(pid)
        vt, vt2 = ids.new_visit_type_id(pid), ids.new_visit_type_id(pid)
        hid, hid2 = ids.new_hold_id(pr), ids.new_hold_id(pr2)
        aid = ids.new_appointment_id(pid)
        ref = secrets.token_urlsafe(16)
        common = {"now_ms": 1, "practice_id": pid, "ctx": SYSTEM}
        await scripts.hold(
            lua,
            scripts.hold_call(
                **common, practitioner_id=pr, visit_type_id=vt, hold_id=hid, start=0, end=1, ttl_ms=1,
                retention_ms=1, idem_ref=ref,
            ),
        )  # fmt: skip
        await scripts.hold(
            lua,
            scripts.hold_call(
                **common, practitioner_id=pr, visit_type_id=vt, hold_id=hid, start=0, end=1, ttl_ms=1, retention_ms=1
            ),
        )
        await scripts.release(lua, scripts.release_call(**common, practitioner_id=pr, hold_id=hid))
        await scripts.book(
            lua,
            scripts.book_call(
                **common, practitioner_id=pr, hold_id=hid, appointment_id=aid, patient_json=b"{}", manage_hash="h",
                patient_ref="p", idem_ref=ref,
            ),
        )  # fmt: skip
        await scripts.cancel(lua, scripts.cancel_call(**common, appointment_id=aid, practitioner_id=pr, reason=""))
        await scripts.reschedule(
            lua, **common, appointment_id=aid, practitioner_id=pr, hold_id=hid2, hold_practitioner_id=pr2, move_id="m"
        )
        await scripts.expire(lua, now_ms=1, practice_id=pid, holds=[(hid, pr), (hid2, pr2)], actor="sweeper")
        await scripts.search(
            lua,
            scripts.search_call(
                **common, practitioner_ids=[pr, pr2], visit_type_id=vt, start=0, end=1, duration_s=60, detail={},
                audit=True,
            ),
        )  # fmt: skip
        await scripts.schedule(
            lua, **common, practitioner_id=pr, schedule_json=b"{}", min_notice_s=0, horizon_s=1, detail={}
        )
        await scripts.apply_day(
            lua, practice_id=pid, practitioner_id=pr, visit_type_ids=[vt, vt2], gen="1",
            days=[scripts.DayPlan(0, 1, [[0], []]), scripts.DayPlan(1, 2, [[], [1]])],
        )  # fmt: skip
        for key in (keys.practice(pid), keys.practitioners(pid), keys.visit_types(pid)):
            await scripts.put_entity(lua, **common, key=key, field="f", record={}, event="practice")
            await scripts.restore_entity(lua, practice_id=pid, key=key, field="f", record={})
        for action in ("create", "revoke", "restore"):
            await scripts.api_key(lua, **common, action=action, key_id="k")
        client = secrets.token_hex(6)
        for action in ("hold", "book"):
            await scripts.limit(
                lua, now_ms=1, client=client, action=action, per_minute=1, live_holds=1, hold_ttl_ms=1, member=hid
            )
        appt = Appointment(
            id=aid, status="booked", version=1, practice_id=pid, practitioner_id=pr, visit_type_id=vt, start=0, end=1,
            patient=Patient(name="A", email="a@b.c"),
        )  # fmt: skip
        await scripts.restore(lua, now_ms=1, appointment=appt, manage_hash="h", updated_ms=1, redis_practitioner=pr2)
        await scripts.restore_seq(lua, practice_id=pid, last_seq=0)


def test_every_script_call_touches_keys_of_one_slot_for_any_ids() -> None:
    lua = Recorder()
    asyncio.run(every_script(lua, 25))
    assert {name for name, _ in lua.seen} == set(NAMES)  # every script was called
    for name, script_keys in lua.seen:
        assert script_keys, name
        slots = {slot(k) for k in script_keys}
        assert len(slots) == 1, f"{name} touches {len(slots)} slots: {script_keys}"
        assert keys.PRACTICES not in script_keys and keys.META not in script_keys, name


def test_a_practice_lives_in_one_slot_and_practices_spread_over_slots() -> None:
    pids = [ids.new_practice_id() for _ in range(200)]
    for pid in pids:
        pr = ids.new_practitioner_id(pid)
        own = {
            keys.practice(pid), keys.schedule(pid, pr), keys.claims(pid, pr), keys.events(pid), keys.audit(pid),
            keys.hold(pid, ids.new_hold_id(pr)), keys.appointment(pid, ids.new_appointment_id(pid)),
            keys.idempotency(pid, "hold", None), keys.api_key_tombstones(pid),
        }  # fmt: skip
        assert {slot(k) for k in own} == {slot(keys.tag(pid))}
    assert len({slot(keys.tag(p)) for p in pids}) > 150  # spread: shards share the practices


# ----------------------------------------------------------------- configuration
def test_cluster_settings_from_the_environment() -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:7001,redis://127.0.0.1:7002", "REDIS_CLUSTER": "1",
           "QUEUE_REDIS_URL": "redis://127.0.0.1:6379/0"}  # fmt: skip
    s = Settings.from_env(env)
    assert s.redis_cluster and s.queue_url == "redis://127.0.0.1:6379/0"
    assert clients.node_urls(s.redis_url or "") == ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"]
    assert clients.node_urls("127.0.0.1:7001, 127.0.0.1:7002") == ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"]
    single = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert not single.redis_cluster and single.queue_url == "redis://127.0.0.1:6379/0"  # unchanged default
    assert Settings.from_env({}).embedded


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:7001", "REDIS_CLUSTER": "1"}, "QUEUE_REDIS_URL"),
        ({"REDIS_CLUSTER": "1", "QUEUE_REDIS_URL": "redis://127.0.0.1:6379"}, "needs REDIS_URL"),
        ({"REDIS_URL": "redis://127.0.0.1:7001,redis://127.0.0.1:7002"}, "REDIS_CLUSTER=1"),
        ({"REDIS_URL": "redis://127.0.0.1:7001", "REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER"),
    ],
)
def test_a_cluster_configuration_that_cannot_work_is_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Settings.from_env(env)


def test_booking_commands_refuse_a_cluster_without_a_queue_redis() -> None:
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1", "REDIS_CLUSTER": "1"}
    for command in ("worker", "persister", "serve"):
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (command, done.stderr)
        assert "QUEUE_REDIS_URL" in done.stderr and "Traceback" not in done.stderr, done.stderr
