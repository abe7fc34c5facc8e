"""Webhooks (API.md "Webhooks", docs/webhooks.md) against the real Redis and PostgreSQL, delivered by the
notification worker to receivers on loopback ports (http.server threads), signatures verified with the
``standardwebhooks`` package."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import socket
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
import standardwebhooks
from litestar.testing import TestClient

from api.app import create_app
from engine import keys
from engine.redis import clients
from persistence.db import make_engine
from persistence.notify.worker import NotificationWorker
from persistence.persister import Persister
from persistence.webhooks import signing, targets
from persistence.webhooks.events import event_id
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import search, setup_practice

pytestmark = pytest.mark.integration
ALL = [
    "appointment.booked",
    "appointment.cancelled",
    "appointment.rescheduled",
    "waitlist.offered",
    "waitlist.accepted",
    "waitlist.lapsed",
]


# ------------------------------------------------------------------------------------------------ receivers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """An HTTP receiver on a loopback port. ``answer(headers, body) -> status`` decides each answer (204 by
    default); ``seen`` lists every request, ``got`` those answered 2xx, as (headers, body)."""

    def __init__(self, port: int | None = None, answer: Callable[[dict[str, str], bytes], int] | None = None) -> None:
        self.port = port or free_port()
        self.answer = answer or (lambda h, b: 204)
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with me.lock:
                    me.seen.append((headers, body))
                code = me.answer(headers, body)
                if 200 <= code < 300:
                    with me.lock:
                        me.got.append((headers, body))
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for _, b in self.got]


def until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cond()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


# ------------------------------------------------------------------------------------------------ the world
class World:
    def __init__(self, client: TestClient[Any], worker: NotificationWorker | None, stores: Any = None) -> None:
        self.client, self.worker = client, worker
        self.settings, self.redis, self.db = stores or (None, None, None)
        self.ctx = setup_practice(client, durations=(30,), practitioners=2)
        self.pid = self.ctx["practice_id"]

    def register(self, url: str, events: list[str] | None = None, **kw: Any) -> dict[str, Any]:
        r = self.client.post(f"/v1/practices/{self.pid}/webhooks", json={"url": url, "events": events or ALL, **kw})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def slots(self, pr: int = 0) -> list[str]:
        day = dt.date.today() + dt.timedelta(days=1)
        pr_id = self.ctx["practitioners"][pr]
        return [
            s["start"] for s in search(self.client, self.pid, self.ctx["visit_types"][30], day, practitioner_id=pr_id)
        ]

    def hold(self, start: str, pr: int = 0) -> str:
        body = {"practitioner_id": self.ctx["practitioners"][pr], "visit_type_id": self.ctx["visit_types"][30]}
        h = self.client.post("/v1/holds", json={**body, "start": start})
        assert h.status_code == 201, h.text
        return h.json()["id"]  # type: ignore[no-any-return]

    def book(self, start: str, pr: int = 0) -> dict[str, Any]:
        patient = {"name": "Ada Lovelace", "email": "ada@example.org"}
        r = self.client.post("/v1/appointments", json={"hold_id": self.hold(start, pr), "patient": patient})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def cancel(self, appointment_id: str) -> None:
        r = self.client.post(f"/v1/appointments/{appointment_id}/cancel", json={})
        assert r.status_code == 200, r.text

    def reschedule(self, appointment_id: str, start: str, pr: int = 0) -> None:
        r = self.client.post(f"/v1/appointments/{appointment_id}/reschedule", json={"hold_id": self.hold(start, pr)})
        assert r.status_code == 200, r.text

    def endpoint(self, webhook_id: str) -> dict[str, Any]:
        r = self.client.get(f"/v1/practices/{self.pid}/webhooks/{webhook_id}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def attempts(self, webhook_id: str) -> list[dict[str, Any]]:
        r = self.client.get(f"/v1/practices/{self.pid}/webhooks/{webhook_id}/deliveries", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def world_of(
    redis_url: str, worker: bool = True, database: str = "booking_webhooks", **settings: Any
) -> Iterator[World]:
    """A practice's world on the Redis database ``redis_url`` (flushed first) and a fresh PostgreSQL database."""
    url = fresh_database(database)
    db = make_engine(url)
    base: dict[str, Any] = {
        "webhook_allow_private": True,
        "webhook_backoff_base_seconds": 0.2,
        "webhook_backoff_max_seconds": 1.0,
        "webhook_timeout_seconds": 5.0,
    }
    s = settings_for(redis_url, database_url=url, **{**base, **settings})
    r = clients.sync_redis(s)
    r.flushdb()
    w = NotificationWorker(s, r, db, queue=clients.queue_redis(s)) if worker else None
    try:
        with TestClient(create_app(s)) as c:
            c.headers.update(AUTH)
            if w is not None:
                w.start()
            try:
                yield World(c, w, (s, r, db))
            finally:
                if w is not None:
                    w.close()
    finally:
        db.dispose()
        r.close()


@pytest.fixture
def world(redis_db: str) -> Iterator[World]:
    with world_of(redis_db) as w:
        yield w


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rcv = Receiver().start()
    yield rcv
    rcv.stop()


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return standardwebhooks.Webhook(secret).verify(body, headers)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ tests
def test_signing_matches_standard_webhooks() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(signing.key_of(secret)) == 32
    at = int(time.time())
    body = b'{"type":"appointment.booked"}'
    mine = signing.sign(secret, "evt_1", at, body)
    theirs = standardwebhooks.Webhook(secret).sign("evt_1", dt.datetime.fromtimestamp(at, dt.timezone.utc), body)
    assert mine == theirs
    assert verified(secret, signing.headers(secret, "evt_1", at, body), body) == {"type": "appointment.booked"}


def test_signed_deliveries_carry_local_times_and_no_patient_unless_asked(world: World, receiver: Receiver) -> None:
    plain = world.register(receiver.url, ["appointment.booked", "appointment.cancelled"])
    other = Receiver().start()
    try:
        with_patient = world.register(other.url, ["appointment.booked"], include_patient=True)
        assert plain["secret"].startswith("whsec_") and plain["status"] == "active"
        listed = world.client.get(f"/v1/practices/{world.pid}/webhooks").json()["items"]
        assert {i["id"] for i in listed} == {plain["id"], with_patient["id"]}
        assert all("secret" not in i for i in listed) and plain["secret"] not in json.dumps(listed)
        start = world.slots()[0]
        appt = world.book(start)
        world.cancel(appt["id"])
        until(lambda: len(receiver.got) >= 2, what="booked and cancelled delivered")
        until(lambda: len(other.got) >= 1, what="booked delivered with the patient")
    finally:
        other.stop()
    payloads = [verified(plain["secret"], h, b) for h, b in receiver.got]
    assert [p["type"] for p in payloads] == ["appointment.booked", "appointment.cancelled"]
    booked = payloads[0]
    assert booked["data"]["appointment_id"] == appt["id"] and booked["data"]["start"] == start
    assert booked["data"]["end"] == appt["end"]
    at = dt.datetime.fromisoformat(booked["timestamp"])  # the practice's local offset at that instant
    assert at.utcoffset() == at.astimezone(zoneinfo.ZoneInfo("Europe/Paris")).utcoffset()
    assert abs((at - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 600
    assert payloads[1]["data"]["status"] == "cancelled" and payloads[1]["data"]["start"] == start
    for _, body in receiver.got:  # no patient data for an endpoint that did not ask for it
        assert b"Ada Lovelace" not in body and b"ada@example.org" not in body and b"patient" not in body
    h, b = other.got[0]
    with_data = verified(with_patient["secret"], h, b)
    assert with_data["data"]["patient"] == {"name": "Ada Lovelace", "email": "ada@example.org"}
    assert h["webhook-id"] == receiver.got[0][0]["webhook-id"]  # one event, one id, whatever the endpoint
    with pytest.raises(standardwebhooks.WebhookVerificationError):  # another secret does not verify
        verified(signing.new_secret(), h, b)
    tampered = b.replace(b"appointment.booked", b"appointment.cancelled")
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verified(with_patient["secret"], h, tampered)
    attempts = world.attempts(plain["id"])
    assert {(a["type"], a["status_code"], a["attempt"], a["error"]) for a in attempts} == {
        ("appointment.booked", 204, 1, None),
        ("appointment.cancelled", 204, 1, None),
    }
    assert {a["event_id"] for a in attempts} == {hh["webhook-id"] for hh, _ in receiver.got}


def test_receiver_down_then_up_receives_everything_in_order_with_stable_ids(world: World) -> None:
    down = Receiver()  # nothing listens on its port yet
    hook = world.register(down.url)
    went_down = time.monotonic()
    slots = world.slots()
    a = world.book(slots[0])
    b = world.book(slots[2], pr=1)
    world.cancel(a["id"])
    world.reschedule(b["id"], slots[4], pr=1)
    until(lambda: len(world.attempts(hook["id"])) >= 6, what="failed attempts recorded while the receiver is down")
    time.sleep(max(0.0, 20.0 - (time.monotonic() - went_down)))  # down for 20 s (issue 21), retried all along
    failed = world.attempts(hook["id"])
    assert len(failed) >= 20, len(failed)  # four events, tried again at most a second apart (the test's backoff)
    assert all(x["status_code"] is None and x["error"] for x in failed)
    assert world.endpoint(hook["id"])["status"] == "active"
    down.start()
    try:
        until(lambda: len(down.got) >= 4, what="every event once the receiver is up")
    finally:
        down.stop()
    payloads = [verified(hook["secret"], h, body) for h, body in down.got]
    by_appt: dict[str, list[str]] = {}
    for p in payloads:
        by_appt.setdefault(p["data"]["appointment_id"], []).append(p["type"])
    assert by_appt == {
        a["id"]: ["appointment.booked", "appointment.cancelled"],
        b["id"]: ["appointment.booked", "appointment.rescheduled"],
    }
    delivered_ids = {h["webhook-id"] for h, _ in down.got}
    assert len(delivered_ids) == 4
    assert {x["event_id"] for x in failed} <= delivered_ids  # retries carried the same webhook-id
    moved = next(p for p in payloads if p["type"] == "appointment.rescheduled")["data"]
    assert (moved["previous"]["start"], moved["start"], moved["version"]) == (slots[2], slots[4], 2)


def test_an_appointments_later_event_waits_for_the_earlier_one(world: World) -> None:
    """The receiver refuses the first two tries of appointment.booked (500) and takes the rest at once: the
    cancellation, though due, is not sent before the booking succeeded."""
    refused: list[int] = []

    def answer(headers: dict[str, str], body: bytes) -> int:
        if b"appointment.booked" in body and len(refused) < 2:
            refused.append(1)
            return 500
        return 204

    rcv = Receiver(answer=answer).start()
    try:
        hook = world.register(rcv.url, ["appointment.booked", "appointment.cancelled"])
        appt = world.book(world.slots()[0])
        world.cancel(appt["id"])
        until(lambda: len(rcv.got) >= 2, what="both delivered")
    finally:
        rcv.stop()
    assert [json.loads(b)["type"] for _, b in rcv.seen] == [
        "appointment.booked",
        "appointment.booked",
        "appointment.booked",
        "appointment.cancelled",
    ]
    codes = [(x["type"], x["status_code"]) for x in reversed(world.attempts(hook["id"]))]
    assert codes == [
        ("appointment.booked", 500),
        ("appointment.booked", 500),
        ("appointment.booked", 204),
        ("appointment.cancelled", 204),
    ]


def test_a_slow_receiver_holds_back_no_other_endpoint(redis_db: str) -> None:
    """One receiver does not answer until released. Once it holds a delivery, another endpoint still gets a later
    event meanwhile, before the slow one's attempt has even ended (its timeout is longer than the wait)."""
    entered, release = threading.Event(), threading.Event()

    def stall(headers: dict[str, str], body: bytes) -> int:
        entered.set()
        release.wait(60)
        return 204

    slow, fast = Receiver(answer=stall).start(), Receiver().start()
    try:
        with world_of(redis_db, webhook_timeout_seconds=60.0) as world:
            slow_hook = world.register(slow.url, ["appointment.booked"])
            world.register(fast.url, ["appointment.cancelled"])
            appt = world.book(world.slots()[0])
            until(entered.is_set, what="the slow receiver holds the booking")
            world.cancel(appt["id"])
            until(lambda: fast.got, timeout=30, what="the other endpoint served meanwhile")
            assert not release.is_set() and world.attempts(slow_hook["id"]) == []  # still under way
            release.set()
            until(lambda: slow.got and world.attempts(slow_hook["id"]), what="the slow one delivered once released")
    finally:
        release.set()
        slow.stop()
        fast.stop()


def test_endpoint_disabled_after_the_retry_window_then_replay_resends(redis_db: str) -> None:
    with world_of(redis_db, webhook_retry_window_seconds=1.0) as world:
        rcv = Receiver()  # down
        hook = world.register(rcv.url, ["appointment.booked"])
        before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        world.book(world.slots()[0])
        ep = until(
            lambda: (e := world.endpoint(hook["id"]))["status"] == "disabled" and e, what="disabled after the window"
        )
        assert ep["last_error"] and "undelivered" in ep["last_error"] and ep["disabled_at"]
        listed = world.client.get(f"/v1/practices/{world.pid}/webhooks").json()["items"]
        assert [(i["id"], i["status"]) for i in listed] == [(hook["id"], "disabled")]
        tried = world.attempts(hook["id"])
        assert len(tried) >= 2 and all(t["error"] for t in tried)
        time.sleep(0.5)  # nothing more is tried once disabled
        assert len(world.attempts(hook["id"])) == len(tried)
        rcv.start()
        try:
            r = world.client.post(
                f"/v1/practices/{world.pid}/webhooks/{hook['id']}/replay", params={"since": before.isoformat()}
            )
            assert r.status_code == 202, r.text
            assert r.json()["replayed"] == 1 and r.json()["status"] == "active"
            until(lambda: rcv.got, what="the replayed event")
        finally:
            rcv.stop()
        assert verified(hook["secret"], *rcv.got[0])["type"] == "appointment.booked"
        assert world.endpoint(hook["id"])["status"] == "active"


def test_replay_sends_delivered_events_again_with_their_ids(world: World, receiver: Receiver) -> None:
    hook = world.register(receiver.url, ["appointment.booked", "appointment.cancelled"])
    t0 = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    a = world.book(world.slots()[0])
    until(lambda: len(receiver.got) >= 1, what="first delivery")
    t1 = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.05)
    world.cancel(a["id"])
    until(lambda: len(receiver.got) >= 2, what="second delivery")
    first_ids = [h["webhook-id"] for h, _ in receiver.got]
    url = f"/v1/practices/{world.pid}/webhooks/{hook['id']}/replay"
    r = world.client.post(url, params={"since": t1.isoformat()})  # only the cancellation is after t1
    assert r.status_code == 202 and r.json()["replayed"] == 1, r.text
    until(lambda: len(receiver.got) >= 3, what="the cancellation again")
    assert receiver.got[2][0]["webhook-id"] == first_ids[1]
    r = world.client.post(url, params={"since": t0.isoformat()})
    assert r.status_code == 202 and r.json()["replayed"] == 2
    until(lambda: len(receiver.got) >= 5, what="both again")
    assert [h["webhook-id"] for h, _ in receiver.got[3:]] == first_ids  # in order, same ids
    for h, b in receiver.got:
        verified(hook["secret"], h, b)
    bad = world.client.post(url, params={"since": "2027-01-01T00:00:00"})  # naive: refused
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"


def test_waitlist_offers_lapses_and_accepts_are_delivered(redis_db: str, receiver: Receiver) -> None:
    """A cancelled appointment's interval is offered to the oldest entry, lapses (3 s offers), is offered to the
    next, which accepts: each entry's events arrive in order, with no patient data."""
    with world_of(redis_db, waitlist_offer_seconds=3) as world:
        c = world.client
        hook = world.register(receiver.url, ["waitlist.offered", "waitlist.lapsed", "waitlist.accepted"])
        start = world.slots()[2]
        appt = world.book(start)
        day = start[:10]
        joined = []
        for name in ("Pat One", "Pat Two"):
            body = {
                "visit_type_id": world.ctx["visit_types"][30],
                "practitioner_id": world.ctx["practitioners"][0],
                "from_date": day,
                "to_date": day,
                "patient": {"name": name, "email": "pat@example.org"},
            }
            r = c.post(f"/v1/practices/{world.pid}/waitlist", json=body, headers={"Authorization": ""})
            assert r.status_code == 201, r.text
            joined.append(r.json())
        first, second = joined
        world.cancel(appt["id"])

        def offered_to_second() -> bool:
            got = c.get(f"/v1/waitlist/{second['id']}", headers={"X-Manage-Token": second["manage_token"]})
            return got.json()["status"] == "offered"

        until(offered_to_second, what="the offer lapsed for the first entry and went to the second")
        r = c.post(f"/v1/waitlist/{second['id']}/accept", json={}, headers={"X-Manage-Token": second["manage_token"]})
        assert r.status_code == 201, r.text
        booked = r.json()
        until(lambda: len(receiver.got) >= 4, what="offered, lapsed, offered, accepted")
        assert world.attempts(hook["id"])
    payloads = [verified(hook["secret"], h, b) for h, b in receiver.got]
    by_entry: dict[str, list[str]] = {}
    for p in payloads:
        by_entry.setdefault(p["data"]["entry_id"], []).append(p["type"])
    assert by_entry == {
        first["id"]: ["waitlist.offered", "waitlist.lapsed"],
        second["id"]: ["waitlist.offered", "waitlist.accepted"],
    }
    offer = next(p["data"] for p in payloads if p["type"] == "waitlist.offered")
    assert offer["start"] == start and offer["expires_at"] and offer["practitioner_id"] == world.ctx["practitioners"][0]
    accepted = next(p["data"] for p in payloads if p["type"] == "waitlist.accepted")
    assert accepted["appointment_id"] == booked["id"] and accepted["start"] == start
    for _, b in receiver.got:
        assert b"Pat " not in b and b"pat@example.org" not in b


def test_events_trimmed_while_no_worker_ran_are_caught_up_from_the_audit_trail(
    redis_db: str, receiver: Receiver
) -> None:
    """No worker runs; the persister stores everything and trims the streams past the notifier (idle): the worker,
    when it starts, rebuilds the trimmed events from the audit trail, under the ids the stream would have given."""
    with world_of(redis_db, worker=False) as world:
        r, db, pid = world.redis, world.db, world.pid
        hook = world.register(receiver.url, ["appointment.booked", "appointment.cancelled", "appointment.rescheduled"])
        slots = world.slots()
        a, b = world.book(slots[0]), world.book(slots[2])
        world.cancel(a["id"])
        world.reschedule(b["id"], slots[4])
        world.hold(slots[6])  # the newest entry is never trimmed: a hold (no webhook event) takes that place
        wanted = (b"book", b"cancel", b"reschedule")
        expected = [event_id(pid, i.decode()) for i, f in r.xrange(keys.events(pid)) if f[b"type"] in wanted]
        assert len(expected) == 4
        Persister(r, db, consumer="t-wh-store").drain()
        later = Persister(r, db, consumer="t-wh-trim", clock=lambda: time.time() + 7200, group_idle_s=0)
        later.refresh_streams(force=True)
        assert later.trim() > 0
        assert not [f for _, f in r.xrange(keys.events(pid)) if f[b"type"] in wanted]  # all trimmed
        assert r.hget(keys.stream_gaps(pid), "notifier") is not None
        worker = NotificationWorker(world.settings, r, db, queue=clients.queue_redis(world.settings))
        worker.start()
        try:
            until(lambda: len(receiver.got) >= 4, what="the trimmed events, from the audit trail")
        finally:
            worker.close()
    assert sorted(h["webhook-id"] for h, _ in receiver.got) == sorted(expected)
    payloads = [verified(hook["secret"], h, body) for h, body in receiver.got]
    by_appt: dict[str, list[str]] = {}
    for p in payloads:
        by_appt.setdefault(p["data"]["appointment_id"], []).append(p["type"])
    assert by_appt == {
        a["id"]: ["appointment.booked", "appointment.cancelled"],
        b["id"]: ["appointment.booked", "appointment.rescheduled"],
    }
    moved = next(p["data"] for p in payloads if p["type"] == "appointment.rescheduled")
    assert (moved["previous"]["start"], moved["start"], moved["version"]) == (slots[2], slots[4], 2)
    assert next(p["data"] for p in payloads if p["type"] == "appointment.cancelled")["start"] == slots[0]


def test_the_embedded_default_delivers_too(make_client: Callable[..., TestClient[Any]], receiver: Receiver) -> None:
    """`booking serve` with no configuration: SQLite and the in-process worker threads."""
    c = make_client(embedded=True, background=True, webhook_allow_private=True, webhook_backoff_base_seconds=0.2)
    world = World(c, None)
    hook = world.register(receiver.url, ["appointment.booked", "appointment.cancelled"])
    appt = world.book(world.slots()[0])
    world.cancel(appt["id"])
    until(lambda: len(receiver.got) >= 2, what="both events from the embedded worker")
    assert [verified(hook["secret"], h, b)["type"] for h, b in receiver.got] == [
        "appointment.booked",
        "appointment.cancelled",
    ]
    assert len(world.attempts(hook["id"])) == 2


def test_a_practice_without_endpoints_stores_no_webhook_events(world: World, receiver: Receiver) -> None:
    from sqlalchemy import func, select

    from persistence.tables import notifications, webhook_events

    other = World(world.client, None)  # a second practice, with no endpoint
    world.register(receiver.url, ["appointment.booked"])
    mine, theirs = world.book(world.slots()[0]), other.book(other.slots()[0])

    def counted(table: Any, col: Any, value: str) -> int:
        with world.db.connect() as c:
            return int(c.execute(select(func.count()).select_from(table).where(col == value)).scalar_one())

    # the outbox has read both bookings (their confirmations are planned) ...
    until(lambda: counted(notifications, notifications.c.appointment_id, theirs["id"]), what="outbox read it")
    until(lambda: receiver.got, what="the first practice's event delivered")
    # ... and kept a webhook event for the practice with an endpoint only
    assert counted(webhook_events, webhook_events.c.practice_id, world.pid) == 1
    assert counted(webhook_events, webhook_events.c.practice_id, other.pid) == 0
    assert json.loads(receiver.got[0][1])["data"]["appointment_id"] == mine["id"]


# ------------------------------------------------------------------------------------------------ the API
@pytest.fixture(scope="module")
def api(redis_dbs: Callable[[int], list[str]]) -> Iterator[World]:
    """No worker, the operator's default (private targets refused); its own stores (a second Redis database of
    the module's: the other tests' worlds come and go beside it), shared by the API tests."""
    (api_redis,) = redis_dbs(1)
    with world_of(api_redis, False, "booking_webhooks_api", webhook_allow_private=False) as w:
        yield w


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "https://0.0.0.0/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_private_targets_are_refused(api: World, url: str) -> None:
    r = api.client.post(f"/v1/practices/{api.pid}/webhooks", json={"url": url, "events": ["appointment.booked"]})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "webhook_target_refused"
    assert r.headers["content-type"].startswith("application/problem+json")
    assert api.client.get(f"/v1/practices/{api.pid}/webhooks").json()["items"] == []


def test_public_targets_pass_the_check() -> None:
    targets.check("https://93.184.215.14/hook", allow_private=False)  # an address literal: no DNS needed
    targets.check("http://[2606:4700::1111]/x", allow_private=False)
    targets.check("http://127.0.0.1/x", allow_private=True)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.org/x", "events": ["appointment.booked"]}, "validation_error"),
        ({"url": "not a url", "events": ["appointment.booked"]}, "validation_error"),
        ({"url": "http://user:pw@93.184.215.14/", "events": ["appointment.booked"]}, "validation_error"),
        ({"url": "https://93.184.215.14/", "events": ["appointment.exploded"]}, "validation_error"),
        ({"url": "https://93.184.215.14/", "events": []}, "validation_error"),
        ({"url": "https://93.184.215.14/", "events": ["appointment.booked"], "extra": 1}, "validation_error"),
        ({"url": "https://93.184.215.14/", "events": "appointment.booked"}, "validation_error"),
    ],
)
def test_bad_registrations_are_422_and_change_nothing(api: World, body: dict[str, Any], code: str) -> None:
    r = api.client.post(f"/v1/practices/{api.pid}/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code
    assert api.client.get(f"/v1/practices/{api.pid}/webhooks").json()["items"] == []


def test_who_may_manage_webhooks(api: World) -> None:
    c = api.client
    api = World(c, None)  # a practice of its own: the list starts empty
    own = c.post(f"/v1/practices/{api.pid}/api-keys").json()["key"]
    other_practice = setup_practice(c)["practice_id"]
    other = c.post(f"/v1/practices/{other_practice}/api-keys").json()["key"]
    base = f"/v1/practices/{api.pid}/webhooks"
    body = {"url": "https://93.184.215.14/hook", "events": ["appointment.booked"]}
    as_own, as_other = {"Authorization": f"Bearer {own}"}, {"Authorization": f"Bearer {other}"}
    made = c.post(base, json=body, headers=as_own)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == f"{base}/{made.json()['id']}"
    hid = made.json()["id"]
    # staff of another practice: the practice's webhooks do not exist for them
    assert c.post(base, json=body, headers=as_other).status_code == 404
    assert c.get(base, headers=as_other).status_code == 404
    assert c.get(f"{base}/{hid}/deliveries", headers=as_other).status_code == 404
    assert c.post(f"{base}/{hid}/replay", params={"since": "2027-01-01T00:00:00Z"}, headers=as_other).status_code == 404
    assert c.delete(f"{base}/{hid}", headers=as_other).status_code == 404
    # and their own practice's path does not reach this endpoint either
    assert c.get(f"/v1/practices/{other_practice}/webhooks/{hid}", headers=as_other).status_code == 404
    # no credentials
    anon = {"Authorization": ""}
    assert c.get(base, headers=anon).status_code == 401
    assert c.post(base, json=body, headers=anon).status_code == 401
    assert [i["id"] for i in c.get(base, headers=as_own).json()["items"]] == [hid]
    assert c.get(f"{base}/{hid}/deliveries", headers=as_own).json() == {"items": []}
    assert c.delete(f"{base}/{hid}", headers=as_own).status_code == 204
    assert c.get(base).json()["items"] == []
    assert c.delete(f"{base}/{hid}").status_code == 404
    assert c.get(f"{base}/{hid}/deliveries").status_code == 404
    assert c.get("/v1/practices/nope/webhooks").status_code == 404


def test_no_patient_key_in_a_body_without_it() -> None:
    """The stored body never holds the patient: it is added per endpoint."""
    from persistence.webhooks import events

    stored = msgspec.json.encode({"type": "appointment.booked", "timestamp": "t", "data": {"a": 1}}).decode()
    patient = msgspec.json.encode({"name": "N", "email": "e@x.org"}).decode()
    assert events.body(stored, patient, include_patient=False) == stored.encode()
    assert json.loads(events.body(stored, patient, include_patient=True))["data"]["patient"]["name"] == "N"


def test_webhook_settings_from_the_environment() -> None:
    from engine.settings import ConfigError, Settings

    s = Settings.from_env({"WEBHOOK_ALLOW_PRIVATE": "1", "WEBHOOK_RETRY_WINDOW_SECONDS": "2.5"})
    assert (s.webhook_allow_private, s.webhook_retry_window_seconds, s.webhook_timeout_seconds) == (True, 2.5, 10.0)
    assert Settings.from_env({}).webhook_allow_private is False
    for env in (
        {"WEBHOOK_ALLOW_PRIVATE": "maybe"},
        {"WEBHOOK_TIMEOUT_SECONDS": "0"},
        {"WEBHOOK_BACKOFF_MAX_SECONDS": "1"},  # below the base (5)
        {"WEBHOOK_CONCURRENCY": "0"},
    ):
        with pytest.raises(ConfigError, match="WEBHOOK_"):
            Settings.from_env(env)


def test_an_unreadable_record_skips_its_webhook_event_but_an_outage_is_retried() -> None:
    """prepare() runs in the notification outbox: a record it cannot read must not hold back notifications (the
    event is skipped, logged), while Redis being unreachable fails the batch (read again later)."""
    import redis as redis_sync

    from engine import events as ev
    from engine.model import Patient
    from persistence.webhooks import events

    record = ev.AppointmentRecord(
        id="p.a1", status="booked", version=1, practice_id="p", practitioner_id="p.r1", visit_type_id="p.v1",
        start=1_900_000_000, end=1_900_001_800, patient=Patient(name="N", email="n@example.org"),
    )  # fmt: skip
    detail = ev.BookDetail(visit_type_id="p.v1", start=1_900_000_000, end=1_900_001_800, patient_id="x", version=1)
    booked = ev.AppointmentBooked(
        event_id="1-0", seq=1, at=1, actor="t", practice_id="p", appointment_id="p.a1", detail=detail, data=record
    )

    class Stub:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        def hget(self, *a: Any) -> Any:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    good = Stub(b'{"id":"p","name":"P","timezone":"Europe/Paris"}')
    assert [p.type for p in events.prepare(good, [booked])] == ["appointment.booked"]
    assert events.prepare(Stub(b"not json"), [booked]) == []
    with pytest.raises(redis_sync.ConnectionError):
        events.prepare(Stub(redis_sync.ConnectionError("down")), [booked])
