"""MANAGE_URL_TEMPLATE through the real worker and SMTP: the confirmation of a booking links to the app's page for
that appointment (tests/unit/test_manage_link.py covers the languages and the kinds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.http import next_weekday, search, setup_practice
from tests.support.smtp import text_of
from tests.system.test_notifications import World, book, make_world

pytestmark = pytest.mark.integration


@pytest.fixture
def world(redis_db: str) -> Iterator[World]:
    yield from make_world(
        "24h", database="booking_notify_manage", redis_url=redis_db,
        manage_url_template="https://app.example/appointments/{appointment_id}",
    )  # fmt: skip


def test_the_confirmation_links_to_the_apps_page_for_the_appointment(world: World) -> None:
    c = world.client
    ctx = setup_practice(c)
    pr, vt = ctx["practitioners"][0], ctx["visit_types"][30]
    slot = search(c, ctx["practice_id"], vt, next_weekday(2))[0]
    appt = book(c, pr, vt, slot["start"])
    nid = f"{appt['id']}:confirmation:0:1"
    assert world.inbox.wait_for(lambda i: nid in i.by_notification(), 30)
    body = text_of(world.inbox.by_notification()[nid][0])
    assert f"https://app.example/appointments/{appt['id']}" in body, body
