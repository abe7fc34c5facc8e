"""A poison event never stalls the write-behind stream (issue 22, item 1): an event PostgreSQL refuses (a NUL byte
in a patient's name, written straight onto the stream, past the API's validation) is set aside in the quarantine,
counted in /metrics, named in /readyz, and replayed by `booking reconcile --replay-quarantine`, while the later
events of every practice reach PostgreSQL."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import msgspec
import pytest
import redis as redis_sync
from litestar.testing import TestClient
from sqlalchemy import text

from api import cli
from api.app import create_app
from engine import keys
from persistence import audit, quarantine
from persistence.db import make_engine
from persistence.persister import Persister
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Any:
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    url = fresh_database("booking_quarantine")
    db = make_engine(url)
    with TestClient(create_app(settings_for(redis_db, database_url=url))) as c:
        c.headers.update(AUTH)
        yield {"client": c, "redis": r, "db": db, "url": url}
    db.dispose()
    r.close()


def rows(db: Any, sql: str, **params: Any) -> list[Any]:
    with db.connect() as c:
        return list(c.execute(text(sql), params).all())


def book(c: Any, ctx: dict[str, Any], start: str, name: str = "Grace H") -> dict[str, Any]:
    pr, vt = ctx["practitioners"][0], ctx["visit_types"][30]
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})
    assert h.status_code == 201, h.text
    a = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": name, "email": "g@x.org"}})
    assert a.status_code == 201, a.text
    return a.json()  # type: ignore[no-any-return]


def poison_booking(r: redis_sync.Redis, practice_id: str, name: str = "a\x00b") -> str:
    """A 'book' event of a new appointment whose patient name holds ``name``, appended as book.lua would (the
    practice's next audit seq), a day after the practice's last booking: nothing but the text is wrong with it."""
    stream = keys.events(practice_id)
    fields = {
        k.decode(): v.decode()
        for k, v in next(f for _, f in reversed(r.xrange(stream)) if f[b"type"] == b"book").items()
    }
    appointment_id = f"{practice_id}.a{secrets.token_urlsafe(12)}"
    data, detail = msgspec.json.decode(fields["data"]), msgspec.json.decode(fields["detail"])
    for d in (data, detail):
        d["start"], d["end"] = d["start"] + 86_400, d["end"] + 86_400
    data["id"], data["patient"]["name"] = appointment_id, name
    seq = r.hincrby(keys.audit(practice_id), "seq", 1)
    fields |= {
        "seq": str(seq),
        "at": str(int(time.time() * 1000)),
        "appointment_id": appointment_id,
        "data": msgspec.json.encode(data).decode(),
        "detail": msgspec.json.encode(detail).decode(),
    }
    return r.xadd(stream, fields).decode()  # type: ignore[no-any-return]


def wait_for(check: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_a_nul_byte_in_one_event_is_set_aside_and_every_later_event_reaches_postgresql(
    world: Any, redis_db: str, monkeypatch: Any, capsys: Any
) -> None:
    c, r, db = world["client"], world["redis"], world["db"]
    ctx_a, ctx_b = setup_practice(c, durations=(30,)), setup_practice(c, durations=(30,))
    day = next_weekday(1)
    slots_a = search(c, ctx_a["practice_id"], ctx_a["visit_types"][30], day)
    first = book(c, ctx_a, slots_a[0]["start"])
    entry_id = poison_booking(r, ctx_a["practice_id"])
    poison_id = f"{ctx_a['practice_id']}-{entry_id}"
    # after the poison: a cancellation of practice a, bookings of practice b
    assert c.post(f"/v1/appointments/{first['id']}/cancel", json={"reason": "ill\r\n\tbetter"}).status_code == 200
    slots_b = search(c, ctx_b["practice_id"], ctx_b["visit_types"][30], day)
    later = [book(c, ctx_b, s["start"]) for s in slots_b[:4:2]]

    # the persister as `booking persister` runs it (its loop, not a drain)
    persister, stop = Persister(r, db, consumer="q1"), threading.Event()
    thread = threading.Thread(target=persister.run, args=(stop,), daemon=True)
    thread.start()
    try:

        def stored() -> bool:
            got = {x[0]: x[1] for x in rows(db, "select id, status from appointments")}
            return all(got.get(a["id"]) == "booked" for a in later) and got.get(first["id"]) == "cancelled"

        assert wait_for(stored), "the events after the poison never reached PostgreSQL"
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()

    for pid in (ctx_a["practice_id"], ctx_b["practice_id"]):
        assert r.xpending(keys.events(pid), keys.PERSIST_GROUP)["pending"] == 0
    reason = rows(db, "select cancel_reason from appointments where id = :i", i=first["id"])[0][0]
    assert reason == "ill\r\n\tbetter"  # free text keeps tab, CR and LF (PostgreSQL takes them)
    aside = rows(db, "select id, action, audited, raw, error, replayed_at_ms from quarantined_events")
    assert len(aside) == 1
    ident, action, audited, raw, error, replayed = aside[0]
    assert (ident, action, audited, replayed) == (poison_id, "book", 1, None)
    assert "\\u0000" in raw and "NUL" in error
    # its audit row keeps the chain whole (it carries no patient data); the chain verifies
    chain = [
        x[0]
        for x in rows(
            db, "select id from audit_events where practice_id = :p order by chain_index", p=ctx_a["practice_id"]
        )
    ]
    assert poison_id in chain and chain[-1].endswith(
        rows(db, "select id from audit_events where action = 'cancel'")[0][0].split("-", 1)[1]
    )
    assert audit.verify(db, out=lambda _: None)
    assert persister.quarantined == 1

    metrics = c.get("/metrics").text
    assert "booking_persister_quarantined_events 1.0" in metrics, metrics
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"  # the API serves right: still ready
    assert ready.json()["quarantined"] == 1 and poison_id in ready.json()["persister_quarantined"]

    # a replay before the cause is fixed: refused again, still there, exit 1
    monkeypatch.setenv("REDIS_URL", redis_db)
    monkeypatch.setenv("DATABASE_URL", world["url"])
    monkeypatch.setenv("BOOKING_ADMIN_TOKEN", "x")
    assert cli.main(["reconcile", "--replay-quarantine"]) == 1
    assert "still refused" in capsys.readouterr().out
    # the operator has the control characters removed from the stored event's record, and replays it
    assert cli.main(["reconcile", "--replay-quarantine", "--strip-controls"]) == 0
    out = capsys.readouterr().out
    assert f"{poison_id} (book) replayed" in out and "1 replayed, 0 left" in out
    names = {
        x[0] for x in rows(db, "select patient_name from appointments where practice_id = :p", p=ctx_a["practice_id"])
    }
    assert "ab" in names
    assert "booking_persister_quarantined_events 0.0" in c.get("/metrics").text
    assert c.get("/readyz").json()["quarantined"] == 0


def test_an_undecodable_entry_is_set_aside_raw_not_dropped(world: Any) -> None:
    """An entry the persister cannot decode (here a control character the API now refuses, in an event written
    before that) is stored raw in the quarantine and acknowledged; the practice's later events flow."""
    c, r, db = world["client"], world["redis"], world["db"]
    ctx = setup_practice(c, durations=(30,))
    slots = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(1))
    book(c, ctx, slots[0]["start"])
    entry_id = r.xadd(keys.events(ctx["practice_id"]), {"v": "1", "type": "book", "seq": "x"}).decode()
    again = book(c, ctx, slots[2]["start"])
    persister = Persister(r, db, consumer="q2")
    persister.drain()
    assert rows(
        db, "select action, audited from quarantined_events where id = :i", i=f"{ctx['practice_id']}-{entry_id}"
    ) == [("undecodable", 0)]
    assert rows(db, "select status from appointments where id = :i", i=again["id"]) == [("booked",)]
    assert r.xpending(keys.events(ctx["practice_id"]), keys.PERSIST_GROUP)["pending"] == 0
    said: list[str] = []
    assert quarantine.replay(db, out=said.append) == (0, 1)  # still undecodable: it stays, said so
    assert any("still refused" in line for line in said), said


def test_a_request_id_header_with_a_control_character_is_replaced() -> None:
    """``X-Request-ID`` is stored in the audit trail (``request_id``): one with a control character or a space is
    replaced by a fresh id, never stored (PostgreSQL refuses NUL in text)."""
    from api.metrics import _request_id

    assert _request_id({"headers": [(b"x-request-id", b"req-42.A_b")]}) == "req-42.A_b"
    for bad in (b"a\x00b", b"a\x1fb", b"a\x7fb", b"a b", b"\xc3\xa9"):
        got = _request_id({"headers": [(b"x-request-id", bad)]})
        assert got != bad.decode("latin-1") and len(got) == 32 and got.isalnum(), (bad, got)
