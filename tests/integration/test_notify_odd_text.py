"""The notifier with odd text (issue 22, item 1: "also check the notifier with such data"): names in any script
and emoji are mailed as written; a stored patient whose text the API would refuse today (a NUL in the name, a
line break in the address: data from before the API refused control characters) ends its notification in a final
state with a readable error, and the notifications after it still go out."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis as redis_sync

from engine import keys
from tests.support.http import search, setup_practice
from tests.support.smtp import text_of
from tests.system.test_notifications import ALL_DAY, World, book, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Iterator[World]:
    yield from make_world("24h", database="booking_notify_odd", redis_url=redis_db)


def notification(c: Any, appointment_id: str, kind: str) -> dict[str, Any] | None:
    items = c.get(f"/v1/appointments/{appointment_id}/notifications").json()["items"]
    return next((i for i in items if i["kind"] == kind), None)


def wait_final(c: Any, appointment_id: str, kind: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        item = notification(c, appointment_id, kind)
        if item is not None and item["status"] in ("sent", "failed", "skipped"):
            return item
        time.sleep(0.2)
    raise AssertionError(f"the {kind} of {appointment_id} never reached a final state: {item}")


def test_odd_text_is_mailed_and_legacy_control_characters_never_stall_the_notifier(redis_db: str, world: World) -> None:
    c, inbox = world.client, world.inbox
    ctx = setup_practice(c, tz="Europe/Paris", durations=(30,), weekly=ALL_DAY)
    pr, vt = ctx["practitioners"][0], ctx["visit_types"][30]
    slots = search(c, ctx["practice_id"], vt, dt.date.today() + dt.timedelta(days=3))

    odd = "Zoë Ñúñez-O'Brien 李小龍 🙂 \u202eabc"  # any script, emoji, a right-to-left override: all printable text
    first = book(c, pr, vt, slots[0]["start"], name=odd)
    nid = f"{first['id']}:confirmation:0:1"
    assert inbox.wait_for(lambda i: nid in i.by_notification(), 30)
    assert f"Hello {odd}," in text_of(inbox.by_notification()[nid][0])
    assert wait_final(c, first["id"], "confirmation")["status"] == "sent"

    # data from before the API refused control characters: the appointment Redis holds has a NUL in the name and
    # a final line break in the address (the old pattern ended in ``$``, which Python also matches before a final
    # newline); its cancellation notice is composed from it, and a header may not hold a line break
    second = book(c, pr, vt, slots[4]["start"])
    assert wait_final(c, second["id"], "confirmation")["status"] == "sent"
    r = redis_sync.Redis.from_url(redis_db)
    try:
        legacy = {"name": "a\x00b", "email": "ada@example.org\n", "phone": None}
        r.hset(keys.appointment(ctx["practice_id"], second["id"]), "patient", msgspec.json.encode(legacy))
    finally:
        r.close()
    assert c.post(f"/v1/appointments/{second['id']}/cancel", json={}).status_code == 200
    item = wait_final(c, second["id"], "cancellation")
    assert item["status"] == "failed" and "cannot compose" in (item["last_error"] or ""), item
    assert f"{second['id']}:cancellation:0:2" not in inbox.by_notification()

    # and the notifier goes on: the next booking's confirmation goes out
    third = book(c, pr, vt, slots[8]["start"], name="Ada Lovelace")
    nid = f"{third['id']}:confirmation:0:1"
    assert inbox.wait_for(lambda i: nid in i.by_notification(), 30)
