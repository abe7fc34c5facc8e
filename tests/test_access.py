"""Who may do what: admin, practice staff keys, public clients, patients' manage tokens; tenant isolation;
abuse limits; privacy of patient data."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from engine import keys
from persistence.db import make_engine
from persistence.persister import Persister
from tests.support.config import ADMIN, REDIS_URL, settings_for
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration
RURL = REDIS_URL.rsplit("/", 1)[0] + "/14"
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
NONE: dict[str, str] = {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world() -> Any:
    r = redis_sync.Redis.from_url(RURL)
    r.flushdb()
    url = fresh_database("booking_access")
    with TestClient(create_app(settings_for(RURL, database_url=url, client_header="X-Client-Id"))) as c:
        w: dict[str, Any] = {"c": c, "r": r, "url": url}
        for name in ("A", "B"):
            c.headers.update(ADMIN_H)
            ctx = setup_practice(c, durations=(30,), practitioners=2)
            day = next_weekday(1)
            slots = search(c, ctx["practice_id"], ctx["visit_types"][30], day)
            key = c.post(f"/v1/practices/{ctx['practice_id']}/api-keys")
            assert key.status_code == 201, key.text
            c.headers.pop("Authorization")
            h = c.post(
                "/v1/holds",
                json={
                    "practitioner_id": ctx["practitioners"][0],
                    "visit_type_id": ctx["visit_types"][30],
                    "start": slots[0]["start"],
                },
            )
            appt = c.post(
                "/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "P", "email": "p@example.org"}}
            ).json()
            w[name] = {**ctx, "day": day, "slots": slots, "key": key.json(), "appt": appt}
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
    )
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


@pytest.fixture
def limited() -> Any:
    r = redis_sync.Redis.from_url(RURL)
    for k in r.scan_iter(match="bk:v1:{c:*"):
        r.delete(k)
    url = fresh_database("booking_limits")
    s = settings_for(
        RURL,
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


def test_no_patient_data_in_logs_metrics_redis_keys_or_audit(caplog: Any, capfd: Any) -> None:
    caplog.set_level(logging.DEBUG)
    name, email, phone = "Zebulon Quixotic-Marmaduke", "zq-unique-7731@example.org", "+99 555 0199"
    r = redis_sync.Redis.from_url(RURL)
    url = fresh_database("booking_privacy")
    with TestClient(create_app(settings_for(RURL, database_url=url))) as c:
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
