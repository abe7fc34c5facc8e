"""App keys (issue 21 item 2, API.md "App keys"): an admin-issued key (stored only as a hash) with which a consumer
booking app's backend acts for its end users (X-End-User) as a public client would, for the listed practices;
its abuse limits count per (key, end user) and per key, not per address; revoked at once; every answer a limit
applies to carries RateLimit-Limit, -Remaining and -Reset, a 429 also Retry-After. Real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_sync
import redis.asyncio as aioredis
from litestar.testing import TestClient
from sqlalchemy import text

from api.app import create_app
from engine import ids, keys
from engine.service import BookingEngine
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.reconcile import reconcile
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
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


def test_a_429_for_live_holds_names_the_live_hold_cap_not_the_per_minute_limit(
    make_client: Callable[..., TestClient[Any]],
) -> None:
    """The 429's RateLimit-Limit is the limit that refused the request: 2 live holds, not the 30 holds a minute
    the client was still well within."""
    c = make_client(limit_holds_per_minute=30, limit_live_holds=2, limit_app_key_holds_per_minute=100)
    ctx = setup_practice(c)
    slots = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(2))[::2]
    app = _as_app(_key(c, None)["key"], "user-a")
    assert [_hold(c, ctx, s, app).status_code for s in slots[:2]] == [201, 201]
    over = _hold(c, ctx, slots[2], app)
    assert over.status_code == 429 and "live holds" in over.json()["detail"], over.text
    assert over.headers["ratelimit-limit"] == "2" and over.headers["ratelimit-remaining"] == "0"
    assert int(over.headers["retry-after"]) >= 1 and over.headers["ratelimit-reset"] == over.headers["retry-after"]


def test_two_thousand_end_users_through_one_key_from_one_address_are_limited_each_on_their_own(
    make_client: Callable[..., TestClient[Any]], lease_redis_dbs: Callable[[int], list[str]]
) -> None:
    # a Redis database of the test's own: the public client's counters (the one test address) start at nothing,
    # whatever other modules of this worker wrote to its default database in the last minute
    [own] = lease_redis_dbs(1)
    c = make_client(redis_url=own, limit_bookings_per_minute=1, limit_app_key_bookings_per_minute=100_000)
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


# ---------------------------------------------------------------- durable in PostgreSQL (issue 21): a Redis loss
@pytest.fixture
def durable(redis_db: str) -> Iterator[dict[str, Any]]:
    r = redis_sync.Redis.from_url(redis_db)  # a Redis database of this module's own (leased): the test empties it
    db = make_engine(fresh_database("booking_app_keys"))
    app = create_app(settings_for(redis_db, database_url=str(db.url), limit_app_key_holds_per_minute=2,
                                  limit_holds_per_minute=100, limit_live_holds=100))  # fmt: skip
    with TestClient(app) as c:
        c.headers.update(AUTH)
        yield {"client": c, "redis": r, "db": db, "redis_url": redis_db}
    db.dispose()
    r.close()


def _lose_redis_and_reconcile(w: dict[str, Any]) -> list[str]:
    """Redis loses everything (the app keys, their tombstones, the reconciled marker); the persister has stored
    the practices' events first (a 201 means that much is durable); then one reconciliation pass."""
    Persister(w["redis"], w["db"], consumer="app-keys").drain()
    w["redis"].flushdb()
    assert w["client"].get("/readyz").status_code == 503
    said = _reconcile(w)
    assert w["client"].get("/readyz").status_code == 200
    return said


def _reconcile(w: dict[str, Any]) -> list[str]:
    """One reconciliation pass (what `booking reconcile` and the persister's start run); what it said."""

    async def once() -> list[str]:
        said: list[str] = []
        ar = aioredis.Redis.from_url(w["redis_url"])
        try:
            await reconcile(BookingEngine(ar, settings_for(w["redis_url"])), w["redis"], w["db"], out=said.append)
        finally:
            await ar.aclose()
        return said

    return asyncio.run(once())


def _db_keys(db: Any) -> dict[str, Any]:
    with db.connect() as conn:
        return {row.id: row for row in conn.execute(text("select * from app_keys"))}


def test_app_keys_survive_a_redis_loss_with_their_practices_and_limits_and_a_revoked_one_stays_revoked(
    durable: dict[str, Any],
) -> None:
    c, db = durable["client"], durable["db"]
    mine, other = setup_practice(c), setup_practice(c)
    kept, revoked = _key(c, [mine["practice_id"]]), _key(c, None)
    assert c.delete(f"/v1/app-keys/{revoked['id']}").status_code == 204
    stored = _db_keys(db)  # hashes only, like Redis
    assert set(stored) == {kept["id"], revoked["id"]}
    assert stored[kept["id"]].hash == ids.token_hash(kept["key"]) and stored[kept["id"]].revoked_ms is None
    assert stored[revoked["id"]].revoked_ms is not None
    assert kept["key"] not in " ".join(str(v) for row in stored.values() for v in row)
    staff = c.post(f"/v1/practices/{mine['practice_id']}/api-keys").json()  # and a staff key, durable by its events
    said = _lose_redis_and_reconcile(durable)
    assert f"restored in Redis: app key {kept['id']}" in said and not any(revoked["id"] in line for line in said), said

    day = next_weekday(2)
    slots = search(c, mine["practice_id"], mine["visit_types"][30], day)
    app = _as_app(kept["key"], "patient-1")
    first = _hold(c, mine, slots[0], app)
    assert first.status_code == 201, first.text
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")  # the key's limit
    assert _hold(c, mine, slots[2], _as_app(kept["key"], "patient-2")).status_code == 201
    over = _hold(c, mine, slots[4], _as_app(kept["key"], "patient-3"))
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    other_slot = search(c, other["practice_id"], other["visit_types"][30], day)[0]
    assert _hold(c, other, other_slot, app).status_code == 403  # still only its own practice
    gone = _hold(c, mine, slots[6], _as_app(revoked["key"], "patient-1"))
    assert gone.status_code == 401 and gone.json()["code"] == "unauthorized"
    bearer = {"Authorization": f"Bearer {staff['key']}"}
    assert c.get("/v1/audit", params={"practice_id": mine["practice_id"]}, headers=bearer).status_code == 200

    # revoked while Redis has lost it (not yet reconciled): the database's revocation stands, and a reconciliation
    # that then runs does not bring it back
    durable["redis"].hdel(keys.APP_KEYS, kept["id"])
    assert c.delete(f"/v1/app-keys/{kept['id']}").status_code == 204
    assert _db_keys(db)[kept["id"]].revoked_ms is not None
    said = _lose_redis_and_reconcile(durable)
    assert not any(kept["id"] in line for line in said), said
    assert _hold(c, mine, slots[8], app).status_code == 401
    assert c.delete(f"/v1/app-keys/{kept['id']}").status_code == 404


def test_a_key_only_redis_holds_is_stored_by_reconciliation_and_a_revocation_the_database_holds_wins(
    durable: dict[str, Any],
) -> None:
    """Keys issued before migration 0010 live in Redis alone: reconciliation stores them. A revocation stored in
    the database whose Redis step failed is carried out in Redis by the next reconciliation."""
    c, db, r = durable["client"], durable["db"], durable["redis"]
    ctx = setup_practice(c)
    legacy, stale = _key(c, None), _key(c, None)
    with db.begin() as conn:
        conn.execute(text("delete from app_keys where id = :k"), {"k": legacy["id"]})
        conn.execute(text("update app_keys set revoked_ms = 1 where id = :k"), {"k": stale["id"]})
    assert r.hexists(keys.APP_KEYS, stale["id"])  # Redis still has it live
    said = _reconcile(durable)
    assert any(legacy["id"] in line and "stored" in line for line in said), said
    assert any(stale["id"] in line and "revoked" in line for line in said), said
    assert _db_keys(db)[legacy["id"]].revoked_ms is None
    slot = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(2))[0]
    assert _hold(c, ctx, slot, _as_app(stale["key"], "u")).status_code == 401
    assert _hold(c, ctx, slot, _as_app(legacy["key"], "u")).status_code == 201
    # and now the legacy key is durable: a Redis loss keeps it
    said = _lose_redis_and_reconcile(durable)
    assert f"restored in Redis: app key {legacy['id']}" in said, said
    assert c.delete(f"/v1/app-keys/{legacy['id']}").status_code == 204
