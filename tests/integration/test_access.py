"""Who may do what: admin, practice staff keys, public clients, patients' manage tokens; tenant isolation;
abuse limits; privacy of patient data."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis as redis_sync
import redis.asyncio as redis_async
from litestar.testing import TestClient

from api.app import create_app
from engine import keys, scripts
from engine.settings import Settings
from persistence.db import make_engine
from persistence.persister import Persister
from tests.support.config import ADMIN, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
NONE: dict[str, str] = {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hold_and_book(c: Any, ctx: dict[str, Any], start: str, patient: dict[str, str]) -> dict[str, Any]:
    """Hold ``start`` with the first practitioner and the 30-minute visit type, and book it (the client's own
    credentials): the appointment, with its manage token."""
    h = c.post(
        "/v1/holds",
        json={"practitioner_id": ctx["practitioners"][0], "visit_type_id": ctx["visit_types"][30], "start": start},
    )
    assert h.status_code == 201, h.text
    appt = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": patient})
    assert appt.status_code == 201, appt.text
    out: dict[str, Any] = appt.json()
    return out


def join_body(ctx: dict[str, Any], day: Any) -> dict[str, Any]:
    return {"visit_type_id": ctx["visit_types"][30], "from_date": day.isoformat(), "to_date": day.isoformat(),
            "patient": {"name": "W", "email": "w@example.org"}}  # fmt: skip


@pytest.fixture(scope="module")
def world(redis_db: str) -> Any:
    r = redis_sync.Redis.from_url(redis_db)
    r.flushdb()
    url = fresh_database("booking_access")
    with TestClient(create_app(settings_for(redis_db, database_url=url, client_header="X-Client-Id"))) as c:
        w: dict[str, Any] = {"c": c, "r": r, "url": url}
        for name in ("A", "B"):
            c.headers.update(ADMIN_H)
            ctx = setup_practice(c, durations=(30,), practitioners=2)
            day = next_weekday(1)
            slots = search(c, ctx["practice_id"], ctx["visit_types"][30], day)
            key = c.post(f"/v1/practices/{ctx['practice_id']}/api-keys")
            assert key.status_code == 201, key.text
            c.headers.pop("Authorization")
            appt = hold_and_book(c, ctx, slots[0]["start"], {"name": "P", "email": "p@example.org"})
            entry = c.post(f"/v1/practices/{ctx['practice_id']}/waitlist", json=join_body(ctx, day))
            assert entry.status_code == 201, entry.text
            w[name] = {**ctx, "day": day, "slots": slots, "key": key.json(), "appt": appt, "entry": entry.json()}
        revoked = c.post(f"/v1/practices/{w['A']['practice_id']}/api-keys", headers=ADMIN_H).json()
        assert (
            c.delete(f"/v1/practices/{w['A']['practice_id']}/api-keys/{revoked['id']}", headers=ADMIN_H).status_code
            == 204
        )
        w["revoked"] = revoked["key"]
        yield w
    r.close()


def events(w: Any) -> int:
    return sum(w["r"].xlen(keys.events(w[n]["practice_id"])) for n in ("A", "B"))


def creds(w: Any) -> dict[str, dict[str, str]]:
    a, b = w["A"], w["B"]
    return {
        "none": NONE,
        "wrong": bearer("not-a-key"),
        "staff_a": bearer(a["key"]["key"]),
        "staff_b": bearer(b["key"]["key"]),
        "revoked": bearer(w["revoked"]),
        "patient_a": {"X-Manage-Token": a["appt"]["manage_token"]},
        "patient_b": {"X-Manage-Token": b["appt"]["manage_token"]},
        "entrant_a": {"X-Manage-Token": a["entry"]["manage_token"]},
        "entrant_b": {"X-Manage-Token": b["entry"]["manage_token"]},
        "admin": ADMIN_H,
    }


# expected status per credential; every call targets practice A's resources
MATRIX: list[tuple[str, str, str, dict[str, int]]] = [
    (
        "POST",
        "/v1/practices",
        "practice",
        {"none": 401, "wrong": 401, "staff_a": 403, "staff_b": 403, "revoked": 401, "patient_a": 401, "admin": 201},
    ),
    (
        "POST",
        "/v1/practices/{pid}/practitioners",
        "name",
        {"none": 401, "wrong": 401, "staff_a": 201, "staff_b": 404, "revoked": 401, "patient_a": 401, "admin": 201},
    ),
    (
        "POST",
        "/v1/practices/{pid}/visit-types",
        "vt",
        {"none": 401, "wrong": 401, "staff_a": 201, "staff_b": 404, "revoked": 401, "patient_a": 401, "admin": 201},
    ),
    (
        "PUT",
        "/v1/practitioners/{pr2}/schedule",
        "schedule",
        {"none": 401, "wrong": 401, "staff_a": 200, "staff_b": 404, "revoked": 401, "patient_a": 401, "admin": 200},
    ),
    (
        "GET",
        "/v1/practitioners/{pr}/schedule",
        "",
        {"none": 401, "wrong": 401, "staff_a": 200, "staff_b": 404, "revoked": 401, "patient_b": 401, "admin": 200},
    ),
    (
        "GET",
        "/v1/practices/{pid}",
        "",
        {"none": 200, "wrong": 401, "staff_a": 200, "staff_b": 200, "revoked": 401, "admin": 200},
    ),
    (
        "GET",
        "/v1/practices/{pid}/availability?date={day}&visit_type_id={vt}",
        "",
        {"none": 200, "wrong": 401, "staff_a": 200, "staff_b": 200, "revoked": 401, "admin": 200},
    ),
    (
        "POST",
        "/v1/holds",
        "hold",
        {"none": 201, "wrong": 401, "staff_a": 201, "staff_b": 404, "revoked": 401, "admin": 201},
    ),
    (
        "GET",
        "/v1/holds/{hold}",
        "",
        {"none": 200, "wrong": 401, "staff_a": 200, "staff_b": 404, "revoked": 401, "admin": 200},
    ),
    (
        "GET",
        "/v1/appointments/{appt}",
        "",
        {
            "none": 401,
            "wrong": 401,
            "staff_a": 200,
            "staff_b": 404,
            "revoked": 401,
            "patient_a": 200,
            "patient_b": 403,
            "admin": 200,
        },
    ),
    (
        "GET",
        "/v1/appointments/{appt}/notifications",
        "",
        {
            "none": 401,
            "wrong": 401,
            "staff_a": 200,
            "staff_b": 404,
            "revoked": 401,
            "patient_a": 200,
            "patient_b": 403,
            "admin": 200,
        },
    ),
    (
        "POST",
        "/v1/appointments/{appt}/cancel",
        "",
        {"none": 401, "wrong": 401, "staff_b": 404, "revoked": 401, "patient_b": 403},
    ),
    (
        "POST",
        "/v1/appointments/{appt}/reschedule",
        "reschedule",
        {"none": 401, "wrong": 401, "staff_b": 404, "revoked": 401, "patient_b": 403},
    ),
    (
        "GET",
        "/v1/audit?practice_id={pid}",
        "",
        {"none": 401, "wrong": 401, "staff_a": 200, "staff_b": 404, "revoked": 401, "patient_a": 401, "admin": 200},
    ),
    ("GET", "/v1/audit?appointment_id={appt}", "", {"none": 401, "staff_a": 200, "staff_b": 404, "admin": 200}),
    # the waitlist: the public joins (abuse limits apply), staff and admin list, the patient manages its entry
    (
        "POST",
        "/v1/practices/{pid}/waitlist",
        "join",
        {"none": 201, "wrong": 401, "staff_a": 201, "staff_b": 404, "revoked": 401, "entrant_a": 201, "admin": 201},
    ),
    (
        "GET",
        "/v1/practices/{pid}/waitlist",
        "",
        {"none": 401, "wrong": 401, "staff_a": 200, "staff_b": 404, "revoked": 401, "entrant_a": 401, "admin": 200},
    ),
    (
        "GET",
        "/v1/waitlist/{entry}",
        "",
        {
            "none": 401,
            "wrong": 401,
            "staff_a": 200,
            "staff_b": 404,
            "revoked": 401,
            "patient_a": 403,
            "entrant_a": 200,
            "entrant_b": 403,
            "admin": 200,
        },
    ),
    (
        "POST",
        "/v1/waitlist/{entry}/accept",
        "empty",
        {"none": 401, "wrong": 401, "staff_b": 404, "revoked": 401, "patient_a": 403, "entrant_b": 403},
    ),
    (
        "POST",
        "/v1/waitlist/{entry}/decline",
        "empty",
        {"none": 401, "wrong": 401, "staff_b": 404, "revoked": 401, "patient_a": 403, "entrant_b": 403},
    ),
    (
        "DELETE",
        "/v1/waitlist/{entry}",
        "",
        {"none": 401, "wrong": 401, "staff_b": 404, "revoked": 401, "entrant_b": 403, "entrant_a": 204},
    ),
    (
        "POST",
        "/v1/practices/{pid}/api-keys",
        "",
        {"none": 401, "wrong": 401, "staff_a": 403, "staff_b": 403, "revoked": 401, "patient_a": 401},
    ),
    (
        "DELETE",
        "/v1/practices/{pid}/api-keys/{key_id}",
        "",
        {"none": 401, "wrong": 401, "staff_a": 403, "staff_b": 403, "revoked": 401, "patient_a": 401},
    ),
]
CASES = [pytest.param(m, p, b, who, st, id=f"{m} {p} as {who}") for m, p, b, exp in MATRIX for who, st in exp.items()]


def body_for(kind: str, w: Any, slot_index: int) -> Any:
    a = w["A"]
    if kind == "practice":
        return {"name": "X", "timezone": "Europe/Paris"}
    if kind == "name":
        return {"name": "Dr X"}
    if kind == "vt":
        return {"name": "V", "duration_minutes": 15}
    if kind == "schedule":
        return {
            "weekly": [
                {"day": d, "start": "08:00", "end": "12:00"}  # unchanged: holds below rely on it
                for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            ]
        }
    if kind == "hold":
        free = a["free_pr2"]  # 30-minute starts of practitioner 2 that never overlap one another
        return {
            "practitioner_id": a["practitioners"][1],
            "visit_type_id": a["visit_types"][30],
            "start": free[slot_index % len(free)],
        }
    if kind == "reschedule":
        return {"hold_id": a["spare_hold"]}
    if kind == "join":
        return join_body(a, a["day"])
    if kind == "empty":
        return {}
    return None


@pytest.mark.parametrize(("method", "path", "body", "who", "status"), CASES)
def test_access_matrix(world: Any, method: str, path: str, body: str, who: str, status: int) -> None:
    w, c, a = world, world["c"], world["A"]
    w.setdefault("n", 0)
    w["n"] += 1
    if "spare_hold" not in a:
        mine = [s["start"] for s in a["slots"] if s["practitioner_id"] == a["practitioners"][1]]
        a["free_pr2"] = [x for x in mine if x[14:16] in ("00", "30")][:-2]
        spare, held = [x for x in mine if x[14:16] in ("00", "30")][-2:]
        a["spare_hold"] = c.post(
            "/v1/holds",
            json={"practitioner_id": a["practitioners"][1], "visit_type_id": a["visit_types"][30], "start": spare},
            headers={"X-Client-Id": "spare"},
        ).json()["id"]
        a["hold"] = c.post(
            "/v1/holds",
            json={"practitioner_id": a["practitioners"][1], "visit_type_id": a["visit_types"][30], "start": held},
            headers={"X-Client-Id": "spare"},
        ).json()["id"]
    w.setdefault("holds_made", 0)
    if body == "hold":
        w["holds_made"] += 1
    url = path.format(
        pid=a["practice_id"],
        pr=a["practitioners"][0],
        pr2=a["practitioners"][1],
        day=a["day"].isoformat(),
        vt=a["visit_types"][30],
        hold=a["hold"],
        appt=a["appt"]["id"],
        key_id=a["key"]["id"],
        entry=a["entry"]["id"],
    )
    audits = c.app.state.engine.searcher.audits  # a cached search before this one appends its audit a bit later
    wait_until(lambda: audits.idle, 10, "the queued search audits to be appended")
    before = events(w)
    headers = {**creds(w)[who], "X-Client-Id": f"c{w['n']}"}
    r = c.request(method, url, json=body_for(body, w, w["holds_made"]) if body else None, headers=headers)
    assert r.status_code == status, (who, r.status_code, r.text)
    if status >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] in ("unauthorized", "forbidden", "not_found")
        if method != "GET":
            assert events(w) == before, "a refused call changed something"


def test_staff_audit_without_filter_sees_only_its_practice(world: Any) -> None:
    c, a = world["c"], world["A"]
    db = make_engine(world["url"])
    Persister(world["r"], db, consumer="access").drain()
    db.dispose()
    items = c.get("/v1/audit", headers=bearer(a["key"]["key"])).json()["items"]
    assert items and {i["practice_id"] for i in items} == {a["practice_id"]}


def test_revoked_key_stops_working_at_once(world: Any) -> None:
    c, a = world["c"], world["A"]
    key = c.post(f"/v1/practices/{a['practice_id']}/api-keys", headers=ADMIN_H).json()
    assert c.get(f"/v1/practitioners/{a['practitioners'][0]}/schedule", headers=bearer(key["key"])).status_code == 200
    assert c.delete(f"/v1/practices/{a['practice_id']}/api-keys/{key['id']}", headers=ADMIN_H).status_code == 204
    assert c.get(f"/v1/practitioners/{a['practitioners'][0]}/schedule", headers=bearer(key["key"])).status_code == 401
    stored = world["r"].hgetall(keys.api_keys(a["practice_id"]))
    assert all(key["key"].encode() not in v for v in stored.values())  # only hashes are stored


def test_setup_without_a_token_is_refused_outside_the_embedded_mode(world: Any) -> None:
    r = world["c"].post("/v1/practices", json={"name": "x", "timezone": "UTC"}, headers=NONE)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_staff_of_another_practice_read_and_search_as_the_public(world: Any) -> None:
    """A staff key of B is no credential at A: A's public reads answer as to anyone, and B's search of A is
    audited in A's trail as a public client's, never as `staff:<B's key>`."""
    c, a, b = world["c"], world["A"], world["B"]
    pid, staff_b = a["practice_id"], bearer(b["key"]["key"])
    search_url = f"/v1/practices/{pid}/availability?date={a['day'].isoformat()}&visit_type_id={a['visit_types'][30]}"
    for url in (f"/v1/practices/{pid}", f"/v1/practices/{pid}/practitioners", f"/v1/practices/{pid}/visit-types"):
        as_b, as_public = c.get(url, headers=staff_b), c.get(url, headers=NONE)
        assert as_b.status_code == as_public.status_code == 200 and as_b.json() == as_public.json(), url
    request_id = uuid.uuid4().hex
    r = c.get(search_url, headers={**staff_b, "X-Client-Id": "b-staff", "X-Request-ID": request_id})
    assert r.status_code == 200 and r.json()["slots"]
    db = make_engine(world["url"])
    Persister(world["r"], db, consumer="access").drain()
    db.dispose()
    trail = c.get("/v1/audit", params={"practice_id": pid, "action": "search", "limit": 1000}, headers=ADMIN_H)
    assert trail.status_code == 200, trail.text
    mine = [i for i in trail.json()["items"] if i["request_id"] == request_id]
    assert [i["actor"] for i in mine] == ["public:b-staff"], mine
    assert all(i["actor"] != f"staff:{b['key']['id']}" for i in trail.json()["items"])


# A bearer token or manage token that is not ASCII, or is huge, is an unknown credential: 401 (403 for a manage
# token), never a 500. Values are header bytes (the test client passes them on re-encoded as UTF-8; the server
# decodes header bytes as latin-1, so either way the handler sees non-ASCII text).
BAD_BEARERS = {
    "utf-8": "Bearer été".encode(),
    "latin-1": b"Bearer \xe9t\xe9",
    "invalid utf-8": b"Bearer \xff\xfe\x80",
    "huge": b"Bearer " + b"x" * 100_000,
    "admin token + non-ascii": f"Bearer {ADMIN}".encode() + "é".encode(),
    "staff-key shape, non-ascii": b"Bearer bks_{pid}_" + "ü".encode() * 40,
    "staff-key shape, huge": b"Bearer bks_{pid}_" + b"k" * 100_000,
}


@pytest.mark.parametrize("bad", BAD_BEARERS.values(), ids=BAD_BEARERS.keys())
def test_a_non_ascii_or_huge_bearer_token_is_401_on_every_endpoint(world: Any, bad: bytes) -> None:
    c, a = world["c"], world["A"]
    bad = bad.replace(b"{pid}", a["practice_id"].encode())
    calls = [
        ("GET", f"/v1/practices/{a['practice_id']}", None),
        ("GET", f"/v1/practices/{a['practice_id']}/visit-types", None),
        (
            "GET",
            f"/v1/practices/{a['practice_id']}/availability?date={a['day']}&visit_type_id={a['visit_types'][30]}",
            None,
        ),
        ("POST", "/v1/practices", {"name": "X", "timezone": "UTC"}),
        ("GET", f"/v1/practitioners/{a['practitioners'][0]}/schedule", None),
        (
            "POST",
            "/v1/holds",
            {
                "practitioner_id": a["practitioners"][0],
                "visit_type_id": a["visit_types"][30],
                "start": a["slots"][-1]["start"],
            },
        ),
        ("GET", f"/v1/appointments/{a['appt']['id']}", None),
        ("POST", f"/v1/appointments/{a['appt']['id']}/cancel", None),
        ("GET", f"/v1/audit?practice_id={a['practice_id']}", None),
        ("POST", f"/v1/practices/{a['practice_id']}/api-keys", None),
    ]
    before = events(world)
    for method, url, body in calls:
        r = c.request(method, url, json=body, headers={b"authorization": bad})
        assert r.status_code == 401, (method, url, r.status_code, r.text[:300])
        assert r.json()["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    assert events(world) == before


BAD_MANAGE: dict[str, tuple[bytes | None, str]] = {  # (X-Manage-Token, query string)
    "utf-8": ("été".encode(), ""),
    "invalid utf-8": (b"\xff\xfe\x80", ""),
    "huge": (b"m" * 100_000, ""),
    "query utf-8": (None, "?manage_token=%C3%A9t%C3%A9"),
    "query invalid utf-8": (None, "?manage_token=%FF%FE"),
    "query surrogate": (None, "?manage_token=%ED%A0%80"),
}


@pytest.mark.parametrize("bad", BAD_MANAGE.values(), ids=BAD_MANAGE.keys())
def test_a_non_ascii_or_huge_manage_token_is_403_never_500(world: Any, bad: tuple[bytes | None, str]) -> None:
    c, a = world["c"], world["A"]
    header, query = bad
    headers = {b"x-manage-token": header} if header is not None else {}
    for method, path in (("GET", ""), ("GET", "/notifications"), ("POST", "/cancel")):
        r = c.request(method, f"/v1/appointments/{a['appt']['id']}{path}{query}", headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (method, path, r.status_code, r.text[:300])
    assert c.get(f"/v1/appointments/{a['appt']['id']}", headers=ADMIN_H).json()["status"] == "booked"


def test_a_non_ascii_admin_token_is_compared_as_the_bytes_sent(redis_db: str, world: Any) -> None:
    token = "pässwört-ü-" + uuid.uuid4().hex
    s = settings_for(redis_db, database_url=world["url"], admin_token=token)
    with TestClient(create_app(s, background=False)) as c:
        url = f"/v1/practitioners/{world['A']['practitioners'][0]}/schedule"
        # a non-ASCII admin token (set in UTF-8) works when sent in UTF-8; one character off is another token
        assert c.get(url, headers={b"authorization": b"Bearer " + token.encode()}).status_code == 200
        other = c.get(url, headers={b"authorization": b"Bearer " + token.replace("ä", "a").encode()})
        assert other.status_code == 401


@pytest.fixture(scope="module", params=["real-redis", "embedded"])
def open_world(
    redis_db: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The embedded default with no BOOKING_ADMIN_TOKEN: its access rules on the real Redis (the embedded
    settings with the real Redis passed in) and in the embedded default itself (in-process Redis, SQLite)."""
    if request.param == "real-redis":
        s = Settings(redis_url=None, admin_token=None, database_url=fresh_database("booking_open"))
        app = create_app(s, redis=redis_async.Redis.from_url(redis_db), background=False)
    else:
        s = Settings(redis_url=None, admin_token=None, data_dir=str(tmp_path_factory.mktemp("open")))
        app = create_app(s, background=False)
    assert s.embedded
    with TestClient(app) as c:
        ctx = setup_practice(c, durations=(30,), practitioners=1)  # setup is open: no credential at all
        slots = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(2))
        appts = []
        for slot in [x for x in slots if x["start"][14:16] in ("00", "30")][:3]:  # 30-minute visits, apart
            appts.append(hold_and_book(c, ctx, slot["start"], {"name": "Olwen Openmode", "email": "olwen@x.io"}))
        yield {"c": c, "ctx": ctx, "appt": appts[0], "other": appts[1], "spare": appts[2], "slots": slots}


OPEN_MATRIX: list[tuple[str, str, dict[str, int]]] = [
    ("GET", "/v1/appointments/{appt}", {"none": 401, "wrong": 403, "other": 403, "patient": 200}),
    ("GET", "/v1/appointments/{appt}/notifications", {"none": 401, "wrong": 403, "other": 403, "patient": 200}),
    ("POST", "/v1/appointments/{appt}/cancel", {"none": 401, "wrong": 403, "other": 403}),
    ("POST", "/v1/appointments/{appt}/reschedule", {"none": 401, "wrong": 403, "other": 403}),
    ("GET", "/v1/audit", {"none": 401, "patient": 401}),
    ("GET", "/v1/audit?practice_id={pid}", {"none": 401, "patient": 401}),
    ("GET", "/v1/audit?appointment_id={appt}", {"none": 401, "patient": 401}),
    ("POST", "/v1/practices/{pid}/api-keys", {"none": 401, "patient": 401}),
    ("DELETE", "/v1/practices/{pid}/api-keys/k0123456789abcdef", {"none": 401}),
    ("GET", "/v1/practices/{pid}", {"none": 200}),
    ("GET", "/v1/practitioners/{pr}/schedule", {"none": 200}),
    ("POST", "/v1/practices/{pid}/visit-types", {"none": 201}),
]
OPEN_CASES = [
    pytest.param(m, p, who, st, id=f"{m} {p} as {who}") for m, p, exp in OPEN_MATRIX for who, st in exp.items()
]


@pytest.mark.parametrize(("method", "path", "who", "status"), OPEN_CASES)
def test_the_embedded_default_opens_setup_only(open_world: Any, method: str, path: str, who: str, status: int) -> None:
    """API.md: with no BOOKING_ADMIN_TOKEN setup is open; patients' data (appointments, their notifications, the
    audit trail) and staff keys still need the manage token or a configured credential."""
    w, c = open_world, open_world["c"]
    headers = {
        "none": NONE,
        "wrong": {"X-Manage-Token": "not-the-token"},
        "other": {"X-Manage-Token": w["other"]["manage_token"]},
        "patient": {"X-Manage-Token": w["appt"]["manage_token"]},
    }[who]
    body = (
        {"hold_id": "x"}
        if path.endswith("reschedule")
        else {"name": "V", "duration_minutes": 15}
        if "visit-types" in path
        else None
    )
    url = path.format(pid=w["ctx"]["practice_id"], pr=w["ctx"]["practitioners"][0], appt=w["appt"]["id"])
    r = c.request(method, url, json=body, headers=headers)
    assert r.status_code == status, (who, r.status_code, r.text)
    if status >= 400:
        assert r.json()["code"] == {401: "unauthorized", 403: "forbidden"}[status]
        assert "Olwen" not in r.text and "olwen@x.io" not in r.text  # no patient data in a refusal
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    seen = c.get(f"/v1/appointments/{w['appt']['id']}", headers={"X-Manage-Token": w["appt"]["manage_token"]})
    assert seen.json()["status"] == "booked" and seen.json()["version"] == 1  # a refused call changed nothing


def test_the_embedded_default_patient_cancels_with_the_manage_token(open_world: Any) -> None:
    c, spare = open_world["c"], open_world["spare"]
    assert c.post(f"/v1/appointments/{spare['id']}/cancel").status_code == 401
    done = c.post(f"/v1/appointments/{spare['id']}/cancel", headers={"X-Manage-Token": spare["manage_token"]})
    assert done.status_code == 200 and done.json()["status"] == "cancelled"


@pytest.fixture
def limited(redis_db: str) -> Any:
    r = redis_sync.Redis.from_url(redis_db)
    for k in r.scan_iter(match="bk:v1:{c:*"):
        r.delete(k)
    url = fresh_database("booking_limits")
    s = settings_for(
        redis_db,
        database_url=url,
        client_header="X-Client-Id",
        limit_live_holds=3,
        limit_holds_per_minute=6,
        limit_bookings_per_minute=2,
    )
    with TestClient(create_app(s)) as c:
        c.headers.update(ADMIN_H)
        ctx = setup_practice(c, durations=(15,), practitioners=1)
        c.headers.pop("Authorization")
        ctx["slots"] = search(c, ctx["practice_id"], ctx["visit_types"][15], next_weekday(2))
        yield c, ctx, r
    r.close()


def _hold(c: Any, ctx: Any, i: int, client: str, **h: str) -> Any:
    return c.post(
        "/v1/holds",
        json={
            "practitioner_id": ctx["practitioners"][0],
            "visit_type_id": ctx["visit_types"][15],
            "start": ctx["slots"][i]["start"],
        },
        headers={"X-Client-Id": client, **h},
    )


def test_hold_cap_and_rate_limits_answer_429_and_spare_other_clients(limited: Any) -> None:
    c, ctx, _ = limited
    held = [_hold(c, ctx, i, "hoarder") for i in range(3)]
    assert [h.status_code for h in held] == [201, 201, 201]
    over = _hold(c, ctx, 3, "hoarder")
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    assert int(over.headers["retry-after"]) >= 1
    assert _hold(c, ctx, 4, "someone-else").status_code == 201  # others are unaffected
    assert _hold(c, ctx, 5, "hoarder", **ADMIN_H).status_code == 201  # the admin is not limited
    # releasing one makes room again
    assert c.delete(f"/v1/holds/{held[0].json()['id']}", headers={"X-Client-Id": "hoarder"}).status_code == 204
    assert _hold(c, ctx, 6, "hoarder").status_code == 201
    # bookings per minute
    booked = [
        c.post(
            "/v1/appointments",
            json={"hold_id": h.json()["id"], "patient": {"name": "L", "email": "l@x.io"}},
            headers={"X-Client-Id": "hoarder"},
        )
        for h in held[1:]
    ]
    assert [b.status_code for b in booked] == [201, 201]
    third = _hold(c, ctx, 8, "booker")
    refused = c.post(
        "/v1/appointments",
        json={"hold_id": third.json()["id"], "patient": {"name": "L", "email": "l@x.io"}},
        headers={"X-Client-Id": "hoarder"},
    )
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert c.get(f"/v1/holds/{third.json()['id']}").status_code == 200  # nothing changed
    # request rate on holds: 6 per minute, failures included
    answers = [_hold(c, ctx, 1, "spammer").status_code for _ in range(8)]  # slot 1 is taken: 409s count too
    assert answers[:6] == [409] * 6 and answers[6:] == [429, 429]
    assert 'booking_operations_total{operation="limit_hold",outcome="refused"}' in c.get("/metrics").text


def test_while_redis_cannot_count_the_limits_each_process_counts_them_and_answers_go_on(
    limited: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster a client's counters live on one shard: while it has no primary, holds and bookings of practices
    on healthy shards are served (not 503), with the same limits counted in the process (access.LocalLimits);
    a hold whose place in the cap cannot be freed in Redis does not fail the answer."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from engine import scripts

    c, ctx, _ = limited

    async def shard_down(*_: Any, **__: Any) -> None:
        raise RedisConnectionError("the shard of {c:hoarder} has no primary")

    monkeypatch.setattr(scripts, "limit", shard_down)
    monkeypatch.setattr(scripts, "forget_client_hold", shard_down)
    held = [_hold(c, ctx, i, "hoarder") for i in range(3)]
    assert [h.status_code for h in held] == [201, 201, 201]
    over = _hold(c, ctx, 3, "hoarder")
    assert over.status_code == 429 and over.json()["code"] == "rate_limited", over.text  # the cap of 3, here
    assert int(over.headers["retry-after"]) >= 1
    assert _hold(c, ctx, 4, "someone-else").status_code == 201
    released = c.delete(f"/v1/holds/{held[0].json()['id']}", headers={"X-Client-Id": "hoarder"})
    assert released.status_code == 204  # Redis could not free its place: answered all the same
    assert _hold(c, ctx, 6, "hoarder").status_code == 201  # the process freed it
    booked = c.post(
        "/v1/appointments",
        json={"hold_id": held[1].json()["id"], "patient": {"name": "L", "email": "l@x.io"}},
        headers={"X-Client-Id": "hoarder"},
    )
    assert booked.status_code == 201, booked.text
    metrics = c.get("/metrics").text
    for line in ('operation="limit_hold",outcome="local"', 'operation="limit_book",outcome="local"',
                 'operation="limit_hold",outcome="refused"', 'operation="limit_forget",outcome="failed"'):  # fmt: skip
        assert f"booking_operations_total{{{line}}}" in metrics, line


@pytest.mark.parametrize("kind", ["TTL exhausted", "slot not covered"])
def test_a_cluster_slot_that_does_not_settle_is_a_503_not_a_500(
    limited: Any, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """redis-py's cluster client gives up on a slot that keeps redirecting ('TTL exhausted', seen once during a
    slot migration under load) or that no node serves: a dependency that is not there right now."""
    from redis.exceptions import ClusterError, SlotNotCoveredError

    from engine.catalog import Catalog

    c, ctx, _ = limited

    async def unsettled(*_: Any, **__: Any) -> Any:
        raise ClusterError("TTL exhausted.") if kind == "TTL exhausted" else SlotNotCoveredError("slot 7")

    monkeypatch.setattr(Catalog, "search_context", unsettled)
    monkeypatch.setattr(scripts, "search", unsettled)  # the slot does not settle for the search script either
    got = c.get(f"/v1/practices/{ctx['practice_id']}/availability",  # a day searched before: not cached here
                params={"date": (next_weekday(2) + timedelta(days=7)).isoformat(), "visit_type_id": ctx["visit_types"][15]})  # fmt: skip
    assert got.status_code == 503 and got.json()["code"] == "dependency_unavailable", got.text
    assert got.headers["retry-after"] == "1"


def test_the_local_limits_decide_as_the_limit_script_does(redis_db: str) -> None:
    """access.LocalLimits against lua/limit.lua on real Redis: one random sequence of requests, releases and
    time steps of a few clients, the same answers (allowed, or refused with the same Retry-After and detail)."""
    import asyncio
    import random

    from engine import access, errors, scripts
    from engine.scripts.registry import Lua

    limits = access.Limits(live_holds=3, holds_per_minute=5, bookings_per_minute=2)
    rng = random.Random(7)

    async def go() -> None:
        r = redis_async.Redis.from_url(redis_db)
        for k in await r.keys("bk:v1:{c:parity-*"):
            await r.delete(k)
        lua, local = Lua(r), access.LocalLimits()
        now, holds, compared = 1_900_000_000_000, {}, 0
        try:
            # the edges first: a window's end (book: 2 a minute) and a hold's expiry (cap 3, 300 s), then at random
            edges = [(0, "parity-e", "book"), (0, "parity-e", "book"), (59_999, "parity-e", "book"),
                     (1, "parity-e", "book"), (0, "parity-h", "hold"), (0, "parity-h", "hold"),
                     (0, "parity-h", "hold"), (299_999, "parity-h", "hold"), (1, "parity-h", "hold")]  # fmt: skip
            for step in range(len(edges) + 600):
                if step < len(edges):
                    delta, client, forced = edges[step]
                    now += delta
                else:
                    now += rng.choice((0, 1, 250, 4_000, 13_000, 59_999, 60_000, 61_000, 300_000))
                    client, forced = f"parity-{rng.randrange(3)}", ""
                if not forced and rng.random() < 0.2 and holds.get(client):
                    hold_id = holds[client].pop(rng.randrange(len(holds[client])))
                    await scripts.forget_client_hold(lua, client, hold_id)
                    local.forget(client, hold_id)
                    continue
                action, member = forced or rng.choice(("hold", "hold", "book")), uuid.uuid4().hex
                per_minute = limits.holds_per_minute if action == "hold" else limits.bookings_per_minute
                answers = []
                try:
                    await scripts.limit(lua, now_ms=now, client=client, action=action, per_minute=per_minute,
                                        live_holds=limits.live_holds if action == "hold" else 0,
                                        hold_ttl_ms=300_000, member=member)  # fmt: skip
                    answers.append(None)
                except errors.LimitExceededError as exc:
                    answers.append((str(exc), exc.retry_after_s))
                try:
                    local.check(limits, client, action, now, 300_000, member)
                    answers.append(None)
                except errors.LimitExceededError as exc:
                    answers.append((str(exc), exc.retry_after_s))
                assert answers[0] == answers[1], (client, action, now, answers)
                compared += answers[0] is not None
                if answers[0] is None and action == "hold":
                    holds.setdefault(client, []).append(member)
            assert compared > 50  # the sequence did reach the limits, often
        finally:
            for k in await r.keys("bk:v1:{c:parity-*"):
                await r.delete(k)
            await r.aclose()

    asyncio.run(go())


def test_no_patient_data_in_logs_metrics_redis_keys_or_audit(redis_db: str, caplog: Any, capfd: Any) -> None:
    caplog.set_level(logging.DEBUG)
    name, email, phone = "Zebulon Quixotic-Marmaduke", "zq-unique-7731@example.org", "+99 555 0199"
    r = redis_sync.Redis.from_url(redis_db)
    url = fresh_database("booking_privacy")
    with TestClient(create_app(settings_for(redis_db, database_url=url))) as c:
        c.headers.update(ADMIN_H)
        ctx = setup_practice(c, durations=(30,))
        slots = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(3))
        h = c.post(
            "/v1/holds",
            json={
                "practitioner_id": ctx["practitioners"][0],
                "visit_type_id": ctx["visit_types"][30],
                "start": slots[0]["start"],
            },
        ).json()
        appt = c.post(
            "/v1/appointments", json={"hold_id": h["id"], "patient": {"name": name, "email": email, "phone": phone}}
        ).json()
        assert appt["patient"]["name"] == name  # the patient sees their own data
        c.post(f"/v1/appointments/{appt['id']}/cancel", json={"reason": "no"})
        db = make_engine(url)
        Persister(r, db, consumer="privacy").drain()
        metrics = c.get("/metrics").text
        audit_rows = c.get("/v1/audit", params={"practice_id": ctx["practice_id"]}).json()["items"]
    from sqlalchemy import text

    with db.connect() as conn:
        stored_audit = [tuple(row) for row in conn.execute(text("select * from audit_events"))]
    db.dispose()
    key_names = [k.decode() for k in r.scan_iter(count=10_000)]
    r.close()
    out, err = capfd.readouterr()
    haystacks = {
        "logs": caplog.text + out + err,
        "metrics": metrics,
        "redis keys": "\n".join(key_names),
        "audit api": str(audit_rows),
        "audit table": str(stored_audit),
    }
    for where, text_ in haystacks.items():
        for secret in (name, "Quixotic", email, "zq-unique-7731", phone, "555 0199"):
            assert secret not in text_, f"{secret!r} found in {where}"
    assert len(stored_audit) >= 4 and any("patient_id" in str(row) for row in stored_audit)


def test_the_embedded_default_limits_callers_without_credentials(open_world: Any) -> None:
    """API.md: public clients are subject to abuse limits; the open caller of the embedded default is a public
    client that may also set up, so its live holds are capped like anyone's (LIMIT_LIVE_HOLDS, 5)."""
    c, ctx = open_world["c"], open_world["ctx"]
    slots = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(3))  # a day nobody booked
    free = [s for s in slots if s["start"][14:16] in ("00", "30")]
    held, refused = [], None
    for slot in free[:6]:
        r = c.post(
            "/v1/holds",
            json={
                "practitioner_id": ctx["practitioners"][0],
                "visit_type_id": ctx["visit_types"][30],
                "start": slot["start"],
            },
        )
        if r.status_code == 201:
            held.append(r.json()["id"])
        else:
            refused = r
    try:
        assert len(held) == 5 and refused is not None
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
    finally:
        for hold_id in held:
            assert c.delete(f"/v1/holds/{hold_id}").status_code == 204  # releasing frees the cap again
