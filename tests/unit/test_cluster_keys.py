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

from engine import ids, keys, scripts
from engine.model import SYSTEM, Appointment, Patient, Resource, WaitlistOffer, WaitlistRecord
from engine.redis import clients
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
    "waitlist_join": ["OK", 1],
    "waitlist_decline": ["OK", 2],
    "waitlist_leave": ["OK", 3],
    "trim": 0,
    "lease": 1,
    "restore_waitlist": ["OK", "queued"],
    "waitlist_reindex": 0,
    "waitlist_counters": 0,
    "waitlist_offer_free": ["OK", 0],
    "series_cancel": ["OK", 2],
    "limit": ["OK", 1, 60_000, 0],
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
        sid = ids.new_series_id(pr)
        occ = [scripts.Occurrence(ids.new_hold_id(pr), i, i + 1, (0, 1)) for i in range(3)]
        await scripts.series_hold(
            lua, **common, practitioner_id=pr, visit_type_id=vt, series_id=sid, every_days=7, occurrences=occ,
            ttl_ms=1, retention_ms=1, idem_ref=ref,
        )  # fmt: skip
        await scripts.series_book(
            lua, **common, practitioner_id=pr, series_id=sid, bookings=[(o.hold_id, aid) for o in occ],
            patient_json=b"{}", manage_hash="h", patient_ref="p", idem_ref=ref,
        )  # fmt: skip
        await scripts.restore_series(lua, practice_id=pid, series_id=sid, fields={"state": "booked"})
        kits = [scripts.OfferKit(p, ((vt, 1800),), (ids.new_hold_id(p),), 1, 1, ((0, 3600),)) for p in (pr, pr2)]
        await scripts.series_cancel(
            lua, **common, series_id=sid, occurrences=[(aid, pr), (ids.new_appointment_id(pid), pr2)], kits=kits,
            reason="",
        )  # fmt: skip
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
        room = Resource(id=ids.new_resource_id(pid), practice_id=pid, name="r", kind="room")
        await scripts.resource(lua, **common, resource=room)
        for key in (keys.practice(pid), keys.practitioners(pid), keys.visit_types(pid)):
            await scripts.put_entity(lua, **common, key=key, field="f", record={}, event="practice")
            await scripts.restore_entity(lua, practice_id=pid, key=key, field="f", record={})
        for action in ("create", "revoke", "restore"):
            await scripts.api_key(lua, **common, action=action, key_id="k")
        for action in ("create", "revoke"):
            await scripts.app_key(lua, now_ms=1, action=action, key_id="a")
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
        # the waitlist: its own scripts, and every freeing script with the kit it carries while entries wait
        kit = scripts.OfferKit(pr, ((vt, 1800), (vt2, 900)), (ids.new_hold_id(pr), ids.new_hold_id(pr)), 1, 1)
        entry = ids.new_waitlist_entry_id(pid)
        await scripts.waitlist_join(lua, now_ms=1, practice_id=pid, entry_id=entry, record=b"{}", ctx=SYSTEM)
        for change in (scripts.waitlist_decline, scripts.waitlist_leave):
            await change(lua, now_ms=1, practice_id=pid, entry_id=entry, hold_id=hid, kit=kit, ctx=SYSTEM)
            await change(lua, now_ms=1, practice_id=pid, entry_id=entry, hold_id="", kit=None, ctx=SYSTEM)
        await scripts.cancel(
            lua, scripts.cancel_call(**common, appointment_id=aid, practitioner_id=pr, reason="", kit=kit)
        )
        await scripts.release(lua, scripts.release_call(**common, practitioner_id=pr, hold_id=hid, kit=kit))
        await scripts.reschedule(
            lua, **common, appointment_id=aid, practitioner_id=pr, hold_id=hid2, hold_practitioner_id=pr2, move_id="m",
            kit=kit,
        )  # fmt: skip
        await scripts.expire(lua, now_ms=1, practice_id=pid, holds=[(hid, pr)], actor="sweeper", kit=kit)
        await scripts.apply_day(
            lua, practice_id=pid, practitioner_id=pr, visit_type_ids=[vt, vt2], gen="1",
            days=[scripts.DayPlan(0, 1, [[0], []])], kits=[kit],
        )  # fmt: skip
        await scripts.tidy(
            lua,
            scripts.tidy_call(
                cut_s=1, practice_id=pid, appointment_id=aid, practitioner_id=pr, stored_version=1,
                stored_status="booked",
            ),
        )  # fmt: skip
        await scripts.series_tidy(
            lua,
            scripts.series_tidy_call(
                practice_id=pid, series_id=sid, appointment_ids=[aid, ids.new_appointment_id(pid)]
            ),
        )
        await scripts.trim(lua, scripts.trim_call(practice_id=pid, min_ms=1, left_behind=[("notifier", 0)]))
        await scripts.close_gap(lua, scripts.close_gap_call(practice_id=pid, group="notifier", gap="0:1"))
        await scripts.lease(lua, scripts.lease_call(practice_id=pid, owner="o", ttl_ms=1))
        record = WaitlistRecord(
            id=ids.new_waitlist_entry_id(pid), practice_id=pid, visit_type_id=vt, from_date="2027-01-04",
            to_date="2027-01-29", spans=[[0, 1]], order=1, status="offered", version=2, joined_ms=1, updated_ms=1,
            offer=WaitlistOffer(hold_id=hid2, practitioner_id=pr2, start=0, end=1, expires_ms=1),
            patient=Patient(name="A", email="a@b.c"),
        )  # fmt: skip
        for live in (True, False):
            await scripts.restore_waitlist(lua, now_ms=1, record=record, live=live, retention_ms=1)
        await scripts.waitlist_reindex(lua, pid)
        await scripts.waitlist_tidy(lua, practice_id=pid, entry_id=record.id, stored_version=2, now_ms=1)
        await scripts.waitlist_offer_free(
            lua, now_ms=1, practice_id=pid, start=0, end=1, actor="reconcile", exclude="", kit=kit
        )
        await scripts.waitlist_counters(lua, pid, {"offers": 1})


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
            keys.idempotency(pid, "hold", None), keys.api_key_tombstones(pid), keys.waitlist_queue(pid),
            keys.waitlist_entries(pid), keys.waitlist_stats(pid),
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
