"""The waitlist offer mail (docs/waitlist.md): on `waitlist_offer` the notifier mails the patient the offered
time in the practice's zone, when it lapses and how to accept or decline; it re-checks the entry and its hold
just before sending, and mails each offer at most once. Over real SMTP (aiosmtpd), the worker on the real
Redis and PostgreSQL; the offers are written by hand as the waitlist scripts write them."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import text

from engine import keys
from persistence.notify import offers
from tests.support import waitlist_events as wl
from tests.support.http import next_weekday, search, setup_practice
from tests.support.smtp import text_of
from tests.system.test_notifications import World, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Iterator[World]:
    # a PostgreSQL database of its own: tests/system/test_notifications.py runs beside this module
    yield from make_world(
        "24h",
        "booking_notify_waitlist",
        redis_url=redis_db,
        waitlist_accept_url="https://app.example.org/offers/{entry_id}?from=mail",
    )


def offer(c: Any, r: Any, ctx: dict[str, Any], start: str, order: int, lapse_s: int = 900) -> Any:
    """An entry offered ``start`` (its hold in Redis, the entry stored and its join and offer events appended)."""
    pid, vt, pr = ctx["practice_id"], ctx["visit_types"][30], ctx["practitioners"][0]
    now = int(time.time() * 1000)
    s = int(dt.datetime.fromisoformat(start).timestamp())
    joined = wl.entry(pid, vt, order, [[now // 1000, now // 1000 + 30 * 86400]], now)
    hold_id = f"{pr}.h{secrets.token_urlsafe(16)}"
    offered = wl.offered(joined, hold_id, pr, s, s + 1800, now + lapse_s * 1000, now + 1)
    wl.hold_for(r, offered)
    wl.store(r, offered)
    wl.append(r, wl.event("waitlist_join", joined, now))
    wl.append(r, wl.event("waitlist_offer", offered, now + 1, expires_ms=offered.offer.expires_ms, cause="cancel"))
    return offered


def rows(world: World, entry_id: str) -> list[tuple[str, str, str | None]]:
    with world.db.connect() as c:
        q = text("select kind, status, last_error from notifications where appointment_id = :e order by version")
        return [tuple(x) for x in c.execute(q, {"e": entry_id}).all()]  # type: ignore[misc]


def test_an_offer_is_mailed_once_with_its_local_time_lapse_and_how_to_answer_and_stale_ones_never(world: World) -> None:
    c, inbox = world.client, world.inbox
    r = world.worker.redis
    world.worker.close()  # stopped while the offers are set up: the notifier sees them all at once
    world.worker.stop.clear()
    world.worker.threads.clear()
    ctx = setup_practice(c, tz="Europe/Paris", durations=(30,))
    pid = ctx["practice_id"]
    slots = search(c, pid, ctx["visit_types"][30], next_weekday(1))
    live = offer(c, r, ctx, slots[0]["start"], 1)
    left = offer(c, r, ctx, slots[2]["start"], 2)
    taken = offer(c, r, ctx, slots[4]["start"], 3)
    lapsed = offer(c, r, ctx, slots[6]["start"], 4, lapse_s=1)
    # the second entry leaves before the notifier runs: its hold released, the entry left (v3)
    gone = wl.changed(left, left.updated_ms + 5, status="left", offer=None)
    r.hset(keys.hold(pid, left.offer.hold_id), "state", "released")
    wl.store(r, gone)
    wl.append(r, wl.event("waitlist_leave", gone, gone.updated_ms, hold_id=left.offer.hold_id,
                          start=left.offer.start, end=left.offer.end))  # fmt: skip
    # the third one's hold is no longer the entry's (Redis holds it otherwise): the interval is not its any more
    r.hset(keys.hold(pid, taken.offer.hold_id), "state", "released")
    time.sleep(1.2)  # the fourth one's offer lapses before the notifier reads it
    world.worker.start()

    nid = f"{live.id}:waitlist_offer:0:2"
    assert inbox.wait_for(lambda i: nid in i.by_notification(), 30)
    assert inbox.wait_for(lambda _: all(rows(world, e.id) and rows(world, e.id)[0][1] in ("skipped", "cancelled")
                                        for e in (left, taken, lapsed)), 30)  # fmt: skip
    msg = inbox.by_notification()[nid][0]
    body = text_of(msg)
    assert msg["To"] == "ada@example.org" and "A time came free" in str(msg["Subject"])
    start = dt.datetime.fromisoformat(slots[0]["start"])
    lapse = dt.datetime.fromtimestamp(live.offer.expires_ms / 1000, start.tzinfo)
    offset = start.strftime("%z")
    assert f"{start.day} " in body and f"at {start:%H:%M} (Europe/Paris, UTC{offset[:3]}:{offset[3:]})" in body
    assert f"until {lapse.strftime('%A')} {lapse.day} " in body and f"at {lapse:%H:%M} (Europe/Paris" in body
    assert f"POST /v1/waitlist/{live.id}/accept" in body and f"POST /v1/waitlist/{live.id}/decline" in body
    assert "X-Manage-Token" in body and "Dr 0" in body and "Test practice" in body and "30 minutes" in body
    # the app's offer page (WAITLIST_ACCEPT_URL), never the offer's hold id (only the entry may book it)
    assert f"https://app.example.org/offers/{live.id}?from=mail" in body and live.offer.hold_id not in body
    assert msg.get_content_maintype() == "text"  # an offer is not an appointment: no calendar attachment
    assert rows(world, live.id) == [("waitlist_offer", "sent", None)]
    assert rows(world, left.id)[0][1] == "cancelled"  # the leave reached the outbox: never sent
    assert rows(world, taken.id) == [("waitlist_offer", "skipped", "offer hold is released")]
    # skipped at send time (expired by the clock, or its hold already tidied by the app's sweeper), or cancelled
    # by the lapse the sweeper made (a waitlist_lapse event that reached the outbox first)
    kind, status, why = rows(world, lapsed.id)[0]
    assert (kind, status) in (("waitlist_offer", "skipped"), ("waitlist_offer", "cancelled"))
    assert status == "cancelled" or why in ("offer hold expired", "offer hold is expired")
    mailed = {e.id for e in (left, taken, lapsed)} & {k.split(":")[0] for k in inbox.by_notification()}
    assert not mailed

    # every event delivered to the notifier again: still one mail per offer
    for stream in (keys.events(pid),):
        r.xgroup_setid(stream, keys.NOTIFY_GROUP, "0")
    assert inbox.wait_for(lambda _: not r.xpending(keys.events(pid), keys.NOTIFY_GROUP)["pending"]
                          and r.xinfo_groups(keys.events(pid))[1]["lag"] == 0, 30)  # fmt: skip
    world.worker.close()
    assert len(inbox.by_notification()[nid]) == 1 and len(inbox.messages) == 1
    assert rows(world, live.id) == [("waitlist_offer", "sent", None)]


def test_the_recheck_names_why_an_offer_mail_is_stale(world: World) -> None:
    """offers.facts against Redis as it is at send time: each way an offer stops being the entry's."""
    c = world.client
    r = world.worker.redis
    ctx = setup_practice(c, tz="Europe/Paris", durations=(30,))
    pid = ctx["practice_id"]
    slots = search(c, pid, ctx["visit_types"][30], next_weekday(2))
    e = offer(c, r, ctx, slots[0]["start"], 1)

    class Row:
        id, practice_id, appointment_id, version = f"{e.id}:waitlist_offer:0:2", pid, e.id, 2

    f, why = offers.facts(r, Row)
    assert f is not None and why == "" and (f.hold_id, f.start, f.timezone) == (e.offer.hold_id, e.offer.start,
                                                                                 "Europe/Paris")  # fmt: skip
    assert offers.facts(r, Row, now_ms=e.offer.expires_ms)[1] == "offer hold expired"
    Row.version = 1
    assert offers.facts(r, Row)[1] == "entry is at version 2, this offer mail is for 1"
    Row.version = 2
    r.hset(keys.hold(pid, e.offer.hold_id), "entry_id", "someone else")
    assert offers.facts(r, Row)[1] == "offer hold is not this entry's"
    r.delete(keys.hold(pid, e.offer.hold_id))
    assert offers.facts(r, Row)[1] == "offer hold is gone"
    wl.store(r, msgspec.structs.replace(e, status="waiting", offer=None))
    assert offers.facts(r, Row)[1] == "entry is waiting"
    r.hdel(keys.waitlist_entries(pid), e.id)
    assert offers.facts(r, Row)[1] == "entry unknown to Redis"


def test_the_offer_mail_links_to_the_app_never_to_the_hold() -> None:
    """Issue 22 item 9: the body names WAITLIST_ACCEPT_URL with the entry id, and no hold id (default and set)."""
    from engine import offer_notices
    from engine.settings import WAITLIST_ACCEPT_URL, ConfigError, Settings

    entry_id, hold_id = "p1.wAbC-d_12", "p1.r2.hSECRETholdid"
    f = offer_notices.OfferFacts(
        notification_id="n", entry_id=entry_id, version=2, hold_id=hold_id, start=1_900_000_000, end=1_900_001_800,
        expires_ms=1_900_000_900_000, timezone="Europe/Paris", practice_name="P", practitioner_name="Dr",
        visit_type_name="V", patient_name="Ada", patient_email="a@example.org",
        accept_url=offers.accept_url(WAITLIST_ACCEPT_URL, entry_id),
    )  # fmt: skip
    body = offer_notices.body(f)
    assert f"https://booking.invalid/waitlist/{entry_id}" in body and hold_id not in body
    assert offers.accept_url("https://a.example/w?e={entry_id}", "x y/z") == "https://a.example/w?e=x%20y%2Fz"
    assert Settings.from_env({"WAITLIST_ACCEPT_URL": "https://a.example/{entry_id}"}).waitlist_accept_url == (
        "https://a.example/{entry_id}"
    )
    with pytest.raises(ConfigError):
        Settings(waitlist_accept_url="https://a.example/no-id").check()
