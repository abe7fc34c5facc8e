"""The waitlist over HTTP (API.md, Waitlist) on the real Redis and PostgreSQL: join, the offer a cancellation
makes, reading it as a hold, accept (201 Appointment with its own manage token, Idempotency-Key), decline, a lapse
with a short WAITLIST_OFFER_SECONDS, leave; the Entry's exact fields; bad input refused with nothing stored."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

import pytest

from engine import keys
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration
PATIENT = {"name": "Wanda Waiting", "email": "wanda@example.org"}
ENTRY_FIELDS = {"id", "practice_id", "visit_type_id", "practitioner_id", "from_date", "to_date", "weekdays",
                "from_time", "to_time", "status", "position", "offer", "manage_token"}  # fmt: skip


def _book(c: Any, ctx: dict[str, Any], start: str) -> dict[str, Any]:
    h = c.post("/v1/holds", json={"practitioner_id": ctx["practitioners"][0], "visit_type_id": ctx["visit_types"][30],
                                  "start": start})  # fmt: skip
    assert h.status_code == 201, h.text
    r = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "B", "email": "b@example.org"}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _join(c: Any, ctx: dict[str, Any], day: dt.date, **extra: Any) -> dict[str, Any]:
    body = {"visit_type_id": ctx["visit_types"][30], "from_date": day.isoformat(), "to_date": day.isoformat(),
            "patient": PATIENT, **extra}  # fmt: skip
    r = c.post(f"/v1/practices/{ctx['practice_id']}/waitlist", json=body, headers={"Authorization": ""})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _as(token: str) -> dict[str, str]:
    return {"X-Manage-Token": token, "Authorization": ""}


def test_join_offer_read_accept(make_client: Any) -> None:
    c = make_client()
    ctx = setup_practice(c, practitioners=1)
    day = next_weekday(2)
    start = search(c, ctx["practice_id"], ctx["visit_types"][30], day)[4]["start"]
    appt = _book(c, ctx, start)
    first = _join(c, ctx, day, weekdays=[day.strftime("%a").lower()], from_time="08:00", to_time="12:00")
    second = _join(c, ctx, day)
    assert set(first) == ENTRY_FIELDS and first["manage_token"] and first["status"] == "waiting"
    assert (first["position"], second["position"], first["offer"]) == (0, 1, None)
    assert first["weekdays"] == [day.strftime("%a").lower()] and first["from_time"] == "08:00"
    assert c.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    got = c.get(f"/v1/waitlist/{first['id']}", headers=_as(first["manage_token"]))
    assert got.status_code == 200, got.text
    entry = got.json()
    assert set(entry) == ENTRY_FIELDS and entry["manage_token"] is None and entry["status"] == "offered"
    offer = entry["offer"]
    assert set(offer) == {"hold_id", "practitioner_id", "start", "end", "expires_at"} and offer["start"] == start
    assert start not in [s["start"] for s in search(c, ctx["practice_id"], ctx["visit_types"][30], day)]
    hold = c.get(f"/v1/holds/{offer['hold_id']}", headers={"Authorization": ""})  # the offer is a hold
    assert hold.status_code == 200 and hold.json()["start"] == start, hold.text
    other = c.get(f"/v1/waitlist/{second['id']}", headers=_as(second["manage_token"])).json()
    assert other["status"] == "waiting" and other["position"] == 0  # the only one still waiting before it: none
    accept = {**_as(first["manage_token"]), "Idempotency-Key": "accept-1"}
    r = c.post(f"/v1/waitlist/{first['id']}/accept", json={}, headers=accept)
    assert r.status_code == 201, r.text
    booked = r.json()
    assert booked["status"] == "booked" and booked["start"] == start and booked["manage_token"]
    assert booked["manage_token"] != first["manage_token"] and booked["patient"]["email"] == PATIENT["email"]
    again = c.post(f"/v1/waitlist/{first['id']}/accept", json={}, headers=accept)  # the same request, re-sent
    assert again.status_code == 201 and again.json() == booked and again.headers["Idempotent-Replayed"] == "true"
    r = c.post(f"/v1/waitlist/{first['id']}/accept", json={}, headers=_as(first["manage_token"]))
    assert r.status_code == 409 and r.json()["code"] == "no_offer", r.text
    mine = c.get(f"/v1/appointments/{booked['id']}", headers=_as(booked["manage_token"]))
    assert mine.status_code == 200, mine.text
    listed = c.get(f"/v1/practices/{ctx['practice_id']}/waitlist").json()["items"]
    assert [e["id"] for e in listed] == [first["id"], second["id"]]
    assert [e["status"] for e in listed] == ["booked", "waiting"] and all(e["manage_token"] is None for e in listed)


def test_decline_then_leave_and_a_lapse_then_everyone(make_client: Any, rsync: Any) -> None:
    c = make_client(waitlist_offer_seconds=1, background=True)  # the app's sweeper tidies lapsed offers
    ctx = setup_practice(c, practitioners=1)
    day = next_weekday(3)
    start = search(c, ctx["practice_id"], ctx["visit_types"][30], day)[2]["start"]
    appt = _book(c, ctx, start)
    a, b = _join(c, ctx, day), _join(c, ctx, day)
    assert c.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200

    def read(e: dict[str, Any]) -> dict[str, Any]:
        return c.get(f"/v1/waitlist/{e['id']}", headers=_as(e["manage_token"])).json()  # type: ignore[no-any-return]

    deadline = time.time() + 20
    while time.time() < deadline and read(b)["status"] != "offered":
        time.sleep(0.2)
    assert read(b)["status"] == "offered" and read(b)["offer"]["start"] == start  # a lapsed, b got it next
    r = c.post(f"/v1/waitlist/{a['id']}/accept", json={}, headers=_as(a["manage_token"]))
    assert r.status_code == 410 and r.json()["code"] == "offer_expired", r.text
    while time.time() < deadline and start not in [
        s["start"] for s in search(c, ctx["practice_id"], ctx["visit_types"][30], day)
    ]:
        time.sleep(0.2)  # fmt: skip
    assert start in [s["start"] for s in search(c, ctx["practice_id"], ctx["visit_types"][30], day)]  # everyone's
    r = c.post(f"/v1/waitlist/{b['id']}/decline", json={}, headers=_as(b["manage_token"]))
    assert r.status_code in (409, 410), r.text  # nothing to decline any more
    assert c.delete(f"/v1/waitlist/{a['id']}", headers=_as(a["manage_token"])).status_code == 204
    assert read(a)["status"] == "left" and rsync.zscore(keys.waitlist_queue(ctx["practice_id"]), a["id"]) is None
    assert c.delete(f"/v1/waitlist/{a['id']}", headers=_as(a["manage_token"])).status_code == 204  # again: no change


def test_decline_over_http_passes_the_offer_on(make_client: Any) -> None:
    c = make_client()
    ctx = setup_practice(c, practitioners=1)
    day = next_weekday(4)
    start = search(c, ctx["practice_id"], ctx["visit_types"][30], day)[1]["start"]
    appt = _book(c, ctx, start)
    a, b = _join(c, ctx, day), _join(c, ctx, day)
    c.post(f"/v1/appointments/{appt['id']}/cancel", json={})
    r = c.post(f"/v1/waitlist/{a['id']}/decline", json={}, headers=_as(a["manage_token"]))
    assert r.status_code == 200 and r.json()["status"] == "waiting" and r.json()["offer"] is None, r.text
    offered = c.get(f"/v1/waitlist/{b['id']}", headers=_as(b["manage_token"])).json()
    assert offered["status"] == "offered" and offered["offer"]["start"] == start
    assert c.delete(f"/v1/waitlist/{b['id']}", headers=_as(b["manage_token"])).status_code == 204
    assert start in [s["start"] for s in search(c, ctx["practice_id"], ctx["visit_types"][30], day)]


def _bad(ctx: dict[str, Any], day: dt.date, case: str) -> dict[str, Any]:
    body: dict[str, Any] = {"visit_type_id": ctx["visit_types"][30], "from_date": day.isoformat(),
                            "to_date": day.isoformat(), "patient": PATIENT}  # fmt: skip
    past, far = (dt.date.today() - dt.timedelta(days=3)).isoformat(), (day + dt.timedelta(days=400)).isoformat()
    changes: dict[str, dict[str, Any]] = {
        "window in the past": {"from_date": past, "to_date": past},
        "starts in the past": {"from_date": past},
        "to_date before from_date": {"to_date": (day - dt.timedelta(days=1)).isoformat()},
        "longer than the horizon": {"to_date": far},
        "unknown visit type": {"visit_type_id": ctx["practice_id"] + ".v" + "0" * 12},
        "visit type of no practice": {"visit_type_id": "nope"},
        "unknown practitioner": {"practitioner_id": ctx["practice_id"] + ".r" + "0" * 12},
        "bad weekday": {"weekdays": ["monday"]},
        "no weekdays": {"weekdays": []},
        "time not HH:MM": {"from_time": "8:00"},
        "time 25:00": {"to_time": "25:00"},
        "from_time after to_time": {"from_time": "12:00", "to_time": "08:00"},
        "from_time equal to_time": {"from_time": "09:00", "to_time": "09:00"},
        "unknown field": {"colour": "blue"},
        "naive date-time as date": {"from_date": f"{day.isoformat()}T09:00:00"},
        "number as date": {"from_date": 20270104},
        "no patient": {"patient": None},
        "bad e-mail": {"patient": {"name": "X", "email": "nope"}},
    }
    return {**body, **changes[case]}


BAD = ["window in the past", "starts in the past", "to_date before from_date", "longer than the horizon",
       "unknown visit type", "visit type of no practice", "unknown practitioner", "bad weekday", "no weekdays",
       "time not HH:MM", "time 25:00", "from_time after to_time", "from_time equal to_time", "unknown field",
       "naive date-time as date", "number as date", "no patient", "bad e-mail"]  # fmt: skip


def test_bad_joins_are_refused_and_store_nothing(make_client: Any, rsync: Any) -> None:
    c = make_client()
    ctx = setup_practice(c, practitioners=1, horizon_days=30)
    day = next_weekday(2)
    pid = ctx["practice_id"]
    before = rsync.xlen(keys.events(pid))
    for case in BAD:
        r = c.post(f"/v1/practices/{pid}/waitlist", json=_bad(ctx, day, case))  # admin: no abuse limit
        want = 404 if ("unknown" in case and case != "unknown field") or "no practice" in case else 422
        assert r.status_code == want, (case, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["detail"], case
    assert rsync.hlen(keys.waitlist_entries(pid)) == 0 and rsync.zcard(keys.waitlist_queue(pid)) == 0
    assert rsync.xlen(keys.events(pid)) == before  # nothing stored, nothing audited
    good = {k: v for k, v in _bad(ctx, day, "unknown field").items() if k != "colour"}
    assert c.post(f"/v1/practices/{'f' * 16}/waitlist", json=good).status_code == 404
    for bad_id in ("nope", f"{pid}.w" + "x" * 16):
        assert c.get(f"/v1/waitlist/{bad_id}").status_code == 404
        assert c.post(f"/v1/waitlist/{bad_id}/accept", json={}).status_code == 404
    entry = _join(c, ctx, day)
    r = c.post(f"/v1/waitlist/{entry['id']}/decline", json={"extra": 1}, headers=_as(entry["manage_token"]))
    assert r.status_code == 422, r.text
    r = c.post(f"/v1/waitlist/{entry['id']}/accept", json={}, headers=_as(entry["manage_token"]))
    assert r.status_code == 409 and r.json()["code"] == "no_offer"


def test_the_document_states_the_waitlist_strictly() -> None:
    from api.app import create_app
    from tests.support.config import settings_for

    doc = create_app(settings_for(None), background=False).openapi_schema.to_schema()
    schemas = doc["components"]["schemas"]
    assert (
        schemas["WaitlistIn"]["additionalProperties"] is False and schemas["EmptyIn"]["additionalProperties"] is False
    )
    assert set(schemas["WaitlistEntryOut"]["properties"]) == ENTRY_FIELDS
    assert set(schemas["WaitlistIn"]["required"]) == {"visit_type_id", "from_date", "to_date", "patient"}
    paths = doc["paths"]
    accept = paths["/v1/waitlist/{entry_id}/accept"]["post"]
    assert {"409", "410"} <= set(accept["responses"]) and accept["requestBody"]["required"] is False
    assert "201" in paths["/v1/practices/{practice_id}/waitlist"]["post"]["responses"]
    assert "204" in paths["/v1/waitlist/{entry_id}"]["delete"]["responses"]


def test_an_offer_hold_is_taken_only_through_its_entry_or_staff(make_client: Any) -> None:
    """Issue 22 item 9: the offer's hold id (in the Entry) books nothing and releases nothing for a stranger; the
    entry's accept (manage token) books it, and staff may release it."""
    c = make_client()
    ctx = setup_practice(c, practitioners=1)
    day = next_weekday(5)
    slots = search(c, ctx["practice_id"], ctx["visit_types"][30], day)
    first, second = slots[3]["start"], slots[8]["start"]
    appts = [_book(c, ctx, first), _book(c, ctx, second)]
    entries = [_join(c, ctx, day), _join(c, ctx, day)]
    for appt in appts:
        assert c.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    offers = [c.get(f"/v1/waitlist/{e['id']}", headers=_as(e["manage_token"])).json()["offer"] for e in entries]
    assert [o["start"] for o in offers] == [first, second]
    public = {"Authorization": ""}
    stranger = {"hold_id": offers[0]["hold_id"], "patient": {"name": "Mallory", "email": "m@example.org"}}
    r = c.post("/v1/appointments", json=stranger, headers=public)
    assert r.status_code == 409 and r.json()["code"] == "slot_unavailable", r.text
    r = c.delete(f"/v1/holds/{offers[0]['hold_id']}", headers=public)
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    own = _book(c, ctx, slots[12]["start"])  # a patient moving an appointment of their own onto someone's offer
    r = c.post(f"/v1/appointments/{own['id']}/reschedule", json={"hold_id": offers[0]["hold_id"]},
               headers=_as(own["manage_token"]))  # fmt: skip
    assert r.status_code == 409 and r.json()["code"] == "slot_unavailable", r.text
    other = entries[1]  # another entry's manage token does not accept this one's offer either
    r = c.post(f"/v1/waitlist/{entries[0]['id']}/accept", json={}, headers=_as(other["manage_token"]))
    assert r.status_code == 403, r.text
    got = c.get(f"/v1/waitlist/{entries[0]['id']}", headers=_as(entries[0]["manage_token"])).json()
    assert got["status"] == "offered" and got["offer"] == offers[0]  # nothing changed
    r = c.post(f"/v1/waitlist/{entries[0]['id']}/accept", json={}, headers=_as(entries[0]["manage_token"]))
    assert r.status_code == 201 and r.json()["start"] == first and r.json()["patient"]["email"] == PATIENT["email"]
    assert c.delete(f"/v1/holds/{offers[1]['hold_id']}").status_code == 204  # staff (here the admin) may
    back = c.get(f"/v1/waitlist/{entries[1]['id']}", headers=_as(entries[1]["manage_token"])).json()
    assert back["status"] == "waiting" and back["offer"] is None


def test_a_public_client_is_capped_at_its_live_entries_with_429_too_many_entries(make_client: Any, rsync: Any) -> None:
    c = make_client(waitlist_max_per_client=2, client_header="X-Client")  # a client of its own: its own limits
    ctx = setup_practice(c, practitioners=1)
    day = next_weekday(2)
    me = {"Authorization": "", "X-Client": f"203.0.113.{secrets.randbelow(250)}-{secrets.token_hex(4)}"}
    body = {"visit_type_id": ctx["visit_types"][30], "from_date": day.isoformat(), "to_date": day.isoformat(),
            "patient": PATIENT}  # fmt: skip
    url = f"/v1/practices/{ctx['practice_id']}/waitlist"
    first, second = (c.post(url, json=body, headers=me) for _ in range(2))
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    r = c.post(url, json=body, headers=me)
    assert r.status_code == 429 and r.json()["code"] == "too_many_entries" and int(r.headers["Retry-After"]) > 0
    assert rsync.zcard(keys.waitlist_queue(ctx["practice_id"])) == 2  # nothing stored
    other = {**me, "X-Client": me["X-Client"] + "-other"}
    assert c.post(url, json=body, headers=other).status_code == 201  # another client may
    assert c.post(url, json=body).status_code == 201  # staff (here the admin): not capped per client
    mine = first.json()
    assert c.delete(f"/v1/waitlist/{mine['id']}", headers=_as(mine["manage_token"])).status_code == 204
    assert c.post(url, json=body, headers=me).status_code == 201  # one of its entries left: it may join again
