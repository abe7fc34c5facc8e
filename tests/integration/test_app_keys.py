"""App keys (issue 21 item 2, API.md "App keys"): an admin-issued key (stored only as a hash) with which a consumer
booking app's backend acts for its end users (X-End-User) as a public client would, for the listed practices;
its abuse limits count per (key, end user) and per key, not per address; revoked at once; every answer a limit
applies to carries RateLimit-Limit, -Remaining and -Reset, a 429 also Retry-After. Real Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from engine import ids, keys
from tests.support.http import next_weekday, search, setup_practice

pytestmark = [pytest.mark.integration]
PATIENT = {"name": "Ada", "email": "ada@example.org"}
NO_AUTH = {"Authorization": ""}


def _as_app(key: str, user: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **({"X-End-User": user} if user is not None else {})}


def _key(c: TestClient[Any], practice_ids: list[str] | None) -> dict[str, Any]:
    r = c.post("/v1/app-keys", json={"name": "Patient app", "practice_ids": practice_ids})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/app-keys/{r.json()['id']}"
    return r.json()  # type: ignore[no-any-return]


def _hold(c: TestClient[Any], ctx: dict[str, Any], slot: dict[str, str], headers: dict[str, str]) -> Any:
    body = {"practitioner_id": slot["practitioner_id"], "visit_type_id": ctx["visit_types"][30], "start": slot["start"]}
    return c.post("/v1/holds", json=body, headers=headers)


def test_an_app_key_acts_as_a_public_client_of_its_practices(client: TestClient[Any], rsync: redis_sync.Redis) -> None:
    c = client
    mine, other = setup_practice(c), setup_practice(c)
    made = _key(c, [mine["practice_id"]])
    assert made["key"].startswith("bka_") and made["practice_ids"] == [mine["practice_id"]]
    stored = rsync.hgetall(keys.APP_KEYS)  # only the hash is kept
    assert made["key"].encode() not in b"".join([*stored.keys(), *stored.values()])
    assert rsync.hget(keys.APP_KEY_HASHES, ids.token_hash(made["key"])) == made["id"].encode()
    app = _as_app(made["key"], "patient-1")
    day = next_weekday(2)
    slots = search(c, mine["practice_id"], mine["visit_types"][30], day)
    hold = _hold(c, mine, slots[0], app)
    assert hold.status_code == 201, hold.text
    booked = c.post("/v1/appointments", json={"hold_id": hold.json()["id"], "patient": PATIENT}, headers=app)
    assert booked.status_code == 201, booked.text
    token = booked.json()["manage_token"]
    read = c.get(f"/v1/appointments/{booked.json()['id']}", headers={**app, "X-Manage-Token": token})
    assert read.status_code == 200
    assert c.get(f"/v1/appointments/{booked.json()['id']}", headers=app).status_code == 403  # no manage token
    # another practice: not this key's
    other_slot = search(c, other["practice_id"], other["visit_types"][30], day)[0]
    refused = _hold(c, other, other_slot, app)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    params = {"date": day.isoformat(), "visit_type_id": other["visit_types"][30]}
    assert c.get(f"/v1/practices/{other['practice_id']}/availability", params=params, headers=app).status_code == 403
    # what only staff or the admin may do
    assert (
        c.post(f"/v1/practices/{mine['practice_id']}/practitioners", json={"name": "X"}, headers=app).status_code == 403
    )
    assert c.post("/v1/app-keys", json={"name": "x"}, headers=app).status_code == 403
    assert c.get("/v1/audit", params={"practice_id": mine["practice_id"]}, headers=app).status_code == 403
    # the end user must be named
    unnamed = _hold(c, mine, slots[4], _as_app(made["key"], None))
    assert unnamed.status_code == 422 and "X-End-User" in unnamed.json()["detail"]
    # a key for every practice
    everywhere = _as_app(_key(c, None)["key"], "patient-2")
    assert _hold(c, other, other_slot, everywhere).status_code == 201
    # revoked: refused at once
    assert c.delete(f"/v1/app-keys/{made['id']}").status_code == 204
    gone = _hold(c, mine, slots[8], app)
    assert gone.status_code == 401 and gone.json()["code"] == "unauthorized"
    assert c.delete(f"/v1/app-keys/{made['id']}").status_code == 404
    assert c.post("/v1/app-keys", json={"name": "x", "practice_ids": ["nope"]}).status_code == 404
    assert c.post("/v1/app-keys", json={"name": "x", "extra": 1}).status_code == 422


def test_limits_count_per_end_user_and_per_key_with_ratelimit_fields(
    make_client: Callable[..., TestClient[Any]],
) -> None:
    c = make_client(limit_holds_per_minute=2, limit_live_holds=100, limit_app_key_holds_per_minute=5)
    ctx = setup_practice(c)
    slots = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(2))[::2]
    key = _key(c, None)["key"]
    a, b = _as_app(key, "user-a"), _as_app(key, "user-b")
    first = _hold(c, ctx, slots[0], a)
    assert first.status_code == 201
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert 0 < int(first.headers["ratelimit-reset"]) <= 60
    taken = _hold(c, ctx, slots[0], a)  # a 409 counted too: the limit applied to it
    assert taken.status_code == 409 and taken.headers["ratelimit-remaining"] == "0"
    over = _hold(c, ctx, slots[1], a)
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    assert int(over.headers["retry-after"]) >= 1 and over.headers["ratelimit-remaining"] == "0"
    assert over.headers["ratelimit-limit"] == "2" and int(over.headers["ratelimit-reset"]) >= 1
    # another end user of the same key, from the same address: counted on their own
    other = _hold(c, ctx, slots[1], b)
    assert other.status_code == 201 and other.headers["ratelimit-remaining"] == "1"
    # the key's own limit (5 a minute over all its users): 3 counted so far; the tighter quota is reported
    c_user = _hold(c, ctx, slots[2], _as_app(key, "user-c"))
    assert c_user.status_code == 201 and c_user.headers["ratelimit-remaining"] == "1"
    d_user = _hold(c, ctx, slots[3], _as_app(key, "user-d"))
    assert d_user.status_code == 201
    assert (d_user.headers["ratelimit-limit"], d_user.headers["ratelimit-remaining"]) == ("5", "0")
    e_user = _hold(c, ctx, slots[4], _as_app(key, "user-e"))
    assert e_user.status_code == 429 and e_user.headers["ratelimit-limit"] == "5"
    # staff and the admin are not limited: no RateLimit fields on their answers
    assert "ratelimit-limit" not in _hold(c, ctx, slots[5], {}).headers


def test_two_thousand_end_users_through_one_key_from_one_address_are_limited_each_on_their_own(
    make_client: Callable[..., TestClient[Any]],
) -> None:
    c = make_client(limit_bookings_per_minute=1, limit_app_key_bookings_per_minute=100_000)
    ctx = setup_practice(c)
    key = _key(c, [ctx["practice_id"]])["key"]
    hold_id = ids.new_hold_id(ctx["practitioners"][0])  # no such hold: each booking is counted, then refused
    body = {"hold_id": hold_id, "patient": PATIENT}
    firsts, seconds = [], []
    for n in range(2000):
        user = _as_app(key, f"user-{n}")
        firsts.append(c.post("/v1/appointments", json=body, headers=user))
        seconds.append(c.post("/v1/appointments", json=body, headers=user))
    assert {r.status_code for r in firsts} == {404}, {r.status_code for r in firsts}
    assert all(r.headers["ratelimit-remaining"] == "0" and r.headers["ratelimit-limit"] == "1" for r in firsts)
    assert {r.status_code for r in seconds} == {429}
    assert all("retry-after" in r.headers for r in seconds)
    # the same address without the key: one public client, limited as one
    public = [c.post("/v1/appointments", json=body, headers=NO_AUTH).status_code for _ in range(2)]
    assert public == [404, 429]
