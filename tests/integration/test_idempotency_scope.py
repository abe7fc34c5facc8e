"""An Idempotency-Key is bound to the route and every path parameter as well as the body (issue 22, item 3): Bob's
accept sent with the key of Alice's accept is 422 ``idempotency_key_reused`` and shows nothing of Alice's, while
Alice's own retry still gets her first answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from engine import idempotency
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration
ALICE = {"name": "Alice Able", "email": "alice.able@example.org", "phone": "+33 1 23 45 67 89"}
BOB = {"name": "Bob Baker", "email": "bob.baker@example.org"}


def _book(c: Any, ctx: dict[str, Any], start: str) -> dict[str, Any]:
    h = c.post("/v1/holds", json={"practitioner_id": ctx["practitioners"][0], "visit_type_id": ctx["visit_types"][30],
                                  "start": start})  # fmt: skip
    assert h.status_code == 201, h.text
    r = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "C", "email": "c@example.org"}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _join(c: Any, ctx: dict[str, Any], day: dt.date, patient: dict[str, str]) -> dict[str, Any]:
    body = {"visit_type_id": ctx["visit_types"][30], "from_date": day.isoformat(), "to_date": day.isoformat(),
            "patient": patient}  # fmt: skip
    r = c.post(f"/v1/practices/{ctx['practice_id']}/waitlist", json=body, headers={"Authorization": ""})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _as(token: str, key: str | None = None) -> dict[str, str]:
    return {"X-Manage-Token": token, "Authorization": "", **({"Idempotency-Key": key} if key else {})}


def test_an_accept_with_another_entrys_key_is_refused_and_shows_nothing_of_it(make_client: Any) -> None:
    c = make_client()
    ctx = setup_practice(c, practitioners=1)
    day = next_weekday(2)
    free = search(c, ctx["practice_id"], ctx["visit_types"][30], day)
    first, second = _book(c, ctx, free[2]["start"]), _book(c, ctx, free[6]["start"])
    alice, bob = _join(c, ctx, day, ALICE), _join(c, ctx, day, BOB)
    for appt in (first, second):  # one offer each: Alice (oldest) the first interval, Bob the second
        assert c.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    for entry in (alice, bob):
        got = c.get(f"/v1/waitlist/{entry['id']}", headers=_as(entry["manage_token"])).json()
        assert got["status"] == "offered", got
    key = "shared-or-guessed-key-0001"
    mine = c.post(f"/v1/waitlist/{alice['id']}/accept", json={}, headers=_as(alice["manage_token"], key))
    assert mine.status_code == 201, mine.text
    theirs = c.post(f"/v1/waitlist/{bob['id']}/accept", json={}, headers=_as(bob["manage_token"], key))
    assert theirs.status_code == 422 and theirs.json()["code"] == "idempotency_key_reused", theirs.text
    assert "idempotent-replayed" not in theirs.headers
    for secret in (mine.json()["id"], mine.json()["manage_token"], ALICE["name"], ALICE["email"], ALICE["phone"]):
        assert secret not in theirs.text
    # nothing changed for Bob: his offer still stands, and his own key books it for him
    assert c.get(f"/v1/waitlist/{bob['id']}", headers=_as(bob["manage_token"])).json()["status"] == "offered"
    booked = c.post(f"/v1/waitlist/{bob['id']}/accept", json={}, headers=_as(bob["manage_token"], "bob-own-key"))
    assert booked.status_code == 201 and booked.json()["patient"]["email"] == BOB["email"], booked.text
    again = c.post(f"/v1/waitlist/{alice['id']}/accept", json={}, headers=_as(alice["manage_token"], key))
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == mine.json()


def test_the_fingerprint_covers_the_route_and_every_path_parameter() -> None:
    route = "/v1/waitlist/{entry_id}/accept"
    a = idempotency.derive("k", b"{}", idempotency.scope_of("POST", route, {"entry_id": "w1"}))
    assert a == idempotency.derive("k", b"{}", idempotency.scope_of("post", route, {"entry_id": "w1"}))
    others = [
        idempotency.scope_of("POST", route, {"entry_id": "w2"}),
        idempotency.scope_of("POST", "/v1/waitlist/{entry_id}/decline", {"entry_id": "w1"}),
        idempotency.scope_of("POST", "/v1/appointments", {}),
    ]
    for scope in others:
        other = idempotency.derive("k", b"{}", scope)
        assert other.ref == a.ref and other.fingerprint != a.fingerprint, scope
    # the scope and the body cannot trade bytes: the scope is length-prefixed
    assert idempotency.derive("k", b"b{}", "a").fingerprint != idempotency.derive("k", b"{}", "ab").fingerprint
