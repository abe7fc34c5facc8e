"""Shared rooms and equipment (API.md, "Buffers, daily limits, shared rooms and equipment..."): a claim occupies its
practitioner and every resource its visit type needs, in the one script that claims; search offers only slots
whose resources are all free; closures hide slots and report conflicts. Over HTTP, on the real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis as redis_sync

from engine import keys
from tests.integration.test_persistence import run_reconcile
from tests.integration.test_practice_reconcile import world  # noqa: F401 - the fixture (Redis, PostgreSQL, persister)
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration

PATIENT = {"name": "B", "email": "b@example.org"}


def hold(c: Any, pr: str, vt: str, start: str) -> Any:
    return c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})


def room_practice(c: Any, practitioners: int = 2) -> dict[str, Any]:
    """Practitioners sharing one room: visit type 'scan' (30 min) needs it, 'talk' (30 min) does not."""
    ctx = setup_practice(c, durations=(30,), practitioners=practitioners, slot_step_minutes=15)
    pid = ctx["practice_id"]
    r = c.post(f"/v1/practices/{pid}/resources", json={"name": "Ultrasound", "kind": "room"})
    assert r.status_code == 201, r.text
    room = r.json()
    assert r.headers["location"] == f"/v1/resources/{room['id']}"
    assert room == {"id": room["id"], "practice_id": pid, "name": "Ultrasound", "kind": "room"}
    v = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "scan", "duration_minutes": 30,
                                                          "resource_ids": [room["id"]]})  # fmt: skip
    assert v.status_code == 201, v.text
    assert v.json()["resource_ids"] == [room["id"]]
    return {**ctx, "room": room["id"], "scan": v.json()["id"], "talk": ctx["visit_types"][30]}


def starts(slots: list[dict[str, str]], pr: str) -> list[str]:
    return [s["start"] for s in slots if s["practitioner_id"] == pr]


def test_a_held_room_hides_the_other_practitioners_slot_and_release_frees_it(client: Any) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    day = next_weekday(2)
    free = search(client, pid, scan, day)
    nine = next(s for s in starts(free, a) if s[11:16] == "09:00")
    assert nine in starts(free, b)
    h = hold(client, a, scan, nine)
    assert h.status_code == 201, h.text
    after = search(client, pid, scan, day)
    assert nine not in starts(after, b)  # the room is taken, whoever sees the patient
    overlapping = (dt.datetime.fromisoformat(nine) + dt.timedelta(minutes=15)).isoformat()
    assert overlapping not in starts(after, b)
    r = hold(client, b, scan, overlapping)
    assert r.status_code == 409 and r.json()["code"] == "slot_unavailable", r.text
    assert "resource_taken" in r.json()["detail"]
    # a visit type that needs no room is still offered to b at that time
    assert nine in starts(search(client, pid, ctx["talk"], day), b)
    assert client.delete(f"/v1/holds/{h.json()['id']}").status_code == 204
    assert nine in starts(search(client, pid, scan, day), b)
    assert hold(client, b, scan, overlapping).status_code == 201


def test_100_concurrent_holds_never_overlap_on_the_room_and_search_never_offers_a_taken_room(client: Any) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    day = next_weekday(2)
    free = search(client, pid, scan, day)
    # 15-minute steps of 30-minute visits: neighbouring starts overlap by half, on the room and across practitioners
    tries = [(s["practitioner_id"], s["start"]) for s in free]
    tries = (tries * (100 // len(tries) + 1))[:100]

    def one(t: tuple[str, str]) -> tuple[int, dict[str, Any]]:
        r = hold(client, t[0], scan, t[1])
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, tries))
    won = [body for status, body in results if status == 201]
    assert won and all(status in (201, 409) for status, _ in results)
    spans = sorted((dt.datetime.fromisoformat(h["start"]), dt.datetime.fromisoformat(h["end"])) for h in won)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start  # no two live claims overlap on the room, whichever practitioner holds it
    taken = [(s, e) for s, e in spans]
    for s in search(client, pid, scan, day):
        st, en = dt.datetime.fromisoformat(s["start"]), dt.datetime.fromisoformat(s["end"])
        assert not any(st < e and en > b_ for b_, e in taken), s  # never offers a slot whose room is taken
    for pr in (a, b):
        for s in starts(search(client, pid, scan, day), pr):
            assert hold(client, pr, scan, s).status_code == 201  # what search offers, hold takes


def test_closures_hide_slots_report_conflicts_and_cancel_frees_the_room(client: Any) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan, room = ctx["practice_id"], ctx["practitioners"], ctx["scan"], ctx["room"]
    day = next_weekday(2)
    free = search(client, pid, scan, day)
    nine = next(s for s in starts(free, a) if s[11:16] == "09:00")
    h = hold(client, a, scan, nine).json()
    appt = client.post("/v1/appointments", json={"hold_id": h["id"], "patient": PATIENT})
    assert appt.status_code == 201, appt.text
    assert nine not in starts(search(client, pid, scan, day), b)
    r = client.post(f"/v1/appointments/{appt.json()['id']}/cancel", json={})
    assert r.status_code == 200, r.text
    assert nine in starts(search(client, pid, scan, day), b)  # the room is free at once
    appt = client.post("/v1/appointments", json={"hold_id": hold(client, b, scan, nine).json()["id"],
                                                 "patient": PATIENT})  # fmt: skip
    assert appt.status_code == 201, appt.text
    t0 = dt.datetime.fromisoformat(nine)
    closure = {"start": (t0 - dt.timedelta(hours=1)).isoformat(), "end": (t0 + dt.timedelta(hours=1)).isoformat(),
               "reason": "repairs"}  # fmt: skip
    r = client.put(f"/v1/resources/{room}/closures", json=[closure])
    assert r.status_code == 200, r.text
    assert r.json()["conflicts"] == [appt.json()["id"]]  # reported, not moved or cancelled
    assert client.get(f"/v1/appointments/{appt.json()['id']}").json()["status"] == "booked"
    after = search(client, pid, scan, day)
    assert all(not (closure["start"] < s["start"] < closure["end"]) for s in after)
    assert all(dt.datetime.fromisoformat(s["end"]) <= t0 - dt.timedelta(hours=1)
               or dt.datetime.fromisoformat(s["start"]) >= t0 + dt.timedelta(hours=1) for s in after)  # fmt: skip
    inside = (t0 + dt.timedelta(minutes=30)).isoformat()
    r = hold(client, a, scan, inside)
    assert r.status_code == 409 and "resource_taken" in r.json()["detail"]
    assert inside in starts(search(client, pid, ctx["talk"], day), a)  # a visit without the room is offered
    assert client.put(f"/v1/resources/{room}/closures", json=[]).json()["conflicts"] == []
    assert hold(client, a, scan, inside).status_code == 201


def test_a_cached_search_changes_after_another_practitioner_takes_the_room(client: Any) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    day = next_weekday(2)
    params = {"date": day.isoformat(), "visit_type_id": scan, "practitioner_id": b}
    first = client.get(f"/v1/practices/{pid}/availability", params=params)
    tag = first.headers["etag"]
    assert client.get(f"/v1/practices/{pid}/availability", params=params,
                      headers={"If-None-Match": tag}).status_code == 304  # fmt: skip
    nine = next(s["start"] for s in first.json()["slots"] if s["start"][11:16] == "09:00")
    assert hold(client, a, scan, nine).status_code == 201  # practitioner a takes the room
    again = client.get(f"/v1/practices/{pid}/availability", params=params, headers={"If-None-Match": tag})
    assert again.status_code == 200 and again.headers["etag"] != tag
    assert nine not in [s["start"] for s in again.json()["slots"]]


def test_api_validation(client: Any) -> None:
    ctx = room_practice(client, practitioners=1)
    pid, room = ctx["practice_id"], ctx["room"]
    for body in ({"name": "x", "kind": "car"}, {"name": "", "kind": "room"}, {"kind": "room"}, {"name": "x"}):
        r = client.post(f"/v1/practices/{pid}/resources", json=body)
        assert r.status_code == 422, (body, r.text)
    assert client.post("/v1/practices/0123456789abcdef/resources", json={"name": "x", "kind": "room"}
                       ).status_code == 404  # fmt: skip
    unknown = f"{pid}.q0123456789ab"
    r = client.put(f"/v1/resources/{unknown}/closures", json=[])
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert client.put("/v1/resources/nonsense/closures", json=[]).status_code == 404
    bad = [{"start": "2030-01-01T10:00:00+00:00", "end": "2030-01-01T09:00:00+00:00"}]
    assert client.put(f"/v1/resources/{room}/closures", json=bad).status_code == 422
    naive = [{"start": "2030-01-01T10:00:00", "end": "2030-01-01T11:00:00"}]
    assert client.put(f"/v1/resources/{room}/closures", json=naive).status_code == 422
    r = client.post(f"/v1/practices/{pid}/visit-types", json={"name": "x", "duration_minutes": 30,
                                                              "resource_ids": [unknown]})  # fmt: skip
    assert r.status_code == 422, r.text
    vt = ctx["talk"]
    assert client.patch(f"/v1/visit-types/{vt}", json={"resource_ids": [unknown]}).status_code == 422
    r = client.patch(f"/v1/visit-types/{vt}", json={"resource_ids": [room, room]})
    assert r.status_code == 200 and r.json()["resource_ids"] == [room], r.text
    listed = client.get(f"/v1/practices/{pid}/resources").json()["items"]
    assert listed == [{"id": room, "practice_id": pid, "name": "Ultrasound", "kind": "room"}]
    assert len([v for v in client.get(f"/v1/practices/{pid}/visit-types").json()["items"] if v["resource_ids"]]) == 2


def test_a_cached_search_changes_after_a_closure_of_the_room(client: Any) -> None:
    ctx = room_practice(client, practitioners=1)
    pid, scan, room = ctx["practice_id"], ctx["scan"], ctx["room"]
    day = next_weekday(2)
    params = {"date": day.isoformat(), "visit_type_id": scan}
    first = client.get(f"/v1/practices/{pid}/availability", params=params)
    tag = first.headers["etag"]
    nine = next(s["start"] for s in first.json()["slots"] if s["start"][11:16] == "09:00")
    t0 = dt.datetime.fromisoformat(nine)
    closure = {"start": nine, "end": (t0 + dt.timedelta(minutes=30)).isoformat()}
    assert client.put(f"/v1/resources/{room}/closures", json=[closure]).status_code == 200
    again = client.get(f"/v1/practices/{pid}/availability", params=params, headers={"If-None-Match": tag})
    assert again.status_code == 200 and again.headers["etag"] != tag
    assert nine not in [s["start"] for s in again.json()["slots"]]
    tag = again.headers["etag"]
    assert client.put(f"/v1/resources/{room}/closures", json=[]).status_code == 200  # reopened: renewed too
    third = client.get(f"/v1/practices/{pid}/availability", params=params, headers={"If-None-Match": tag})
    assert third.status_code == 200 and nine in [s["start"] for s in third.json()["slots"]]


def test_only_the_practice_staff_or_the_admin_manage_its_resources(client: Any) -> None:
    mine, other = room_practice(client, practitioners=1), room_practice(client, practitioners=1)
    key = client.post(f"/v1/practices/{mine['practice_id']}/api-keys")
    assert key.status_code == 201, key.text
    staff = {"Authorization": f"Bearer {key.json()['key']}"}
    body = {"name": "ECG", "kind": "equipment"}
    r = client.post(f"/v1/practices/{mine['practice_id']}/resources", json=body, headers=staff)
    assert r.status_code == 201 and r.json()["kind"] == "equipment", r.text
    before = client.get(f"/v1/practices/{other['practice_id']}/resources").json()
    # another practice's staff: refused, its existence not revealed (API.md "Who may do what"), nothing changed
    r = client.post(f"/v1/practices/{other['practice_id']}/resources", json=body, headers=staff)
    assert r.status_code in (403, 404), r.text
    r = client.put(f"/v1/resources/{other['room']}/closures", json=[], headers=staff)
    assert r.status_code in (403, 404), r.text
    assert client.get(f"/v1/practices/{other['practice_id']}/resources").json() == before
    admin = client.headers.pop("Authorization", None)
    r = client.post(f"/v1/practices/{mine['practice_id']}/resources", json=body)
    assert r.status_code == 401, r.text
    # every resources route is a staff route: a valid request with no credentials (or unknown ones) is 401 and
    # changes nothing (schemathesis ST203: the closures' PUT of an existing resource without Authorization)
    t0 = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    closure = [{"start": t0.isoformat(), "end": (t0 + dt.timedelta(hours=1)).isoformat()}]
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        for b in (closure, []):
            r = client.put(f"/v1/resources/{mine['room']}/closures", json=b, headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "unauthorized", (headers, b, r.text)
        r = client.get(f"/v1/practices/{mine['practice_id']}/resources", headers=headers)
        assert r.status_code == 401, r.text
    client.headers["Authorization"] = admin
    r = client.put(f"/v1/resources/{mine['room']}/closures", json=closure)
    assert r.status_code == 200 and len(r.json()["closures"]) == 1 and r.json()["conflicts"] == [], r.text


def test_patch_adding_a_room_reports_conflicts_and_reschedule_moves_the_room(client: Any) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan, talk, room = ctx["practice_id"], ctx["practitioners"], ctx["scan"], ctx["talk"], ctx["room"]
    day = next_weekday(2)
    free = search(client, pid, talk, day)
    nine = next(s for s in starts(free, a) if s[11:16] == "09:00")
    booked = []
    for pr in (a, b):  # two 'talk' visits at 09:00, one per practitioner: fine without a room
        h = hold(client, pr, talk, nine).json()
        booked.append(client.post("/v1/appointments", json={"hold_id": h["id"], "patient": PATIENT}).json()["id"])
    scan_appt = client.post("/v1/appointments", json={
        "hold_id": hold(client, a, scan, next(s for s in starts(search(client, pid, scan, day), a)
                                              if s[11:16] == "11:00")).json()["id"],
        "patient": PATIENT}).json()  # fmt: skip
    r = client.patch(f"/v1/visit-types/{talk}", json={"resource_ids": [room]})
    assert r.status_code == 200, r.text
    assert r.json()["conflicts"] == sorted(booked)  # both now need the one room at 09:00: reported, kept
    # reschedule the scan onto practitioner b at 10:00: the room moves with it
    ten = next(s for s in starts(search(client, pid, scan, day), b) if s[11:16] == "10:00")
    h = hold(client, b, scan, ten).json()
    r = client.post(f"/v1/appointments/{scan_appt['id']}/reschedule", json={"hold_id": h["id"]})
    assert r.status_code == 200, r.text
    eleven = scan_appt["start"]
    assert eleven in starts(search(client, pid, scan, day), a)  # the old room claim is freed at once
    assert ten not in starts(search(client, pid, scan, day), a)  # the new one is the appointment's
    # the moved appointment holds the room as its own: cancelling it frees the room at once
    assert client.post(f"/v1/appointments/{scan_appt['id']}/cancel", json={}).status_code == 200
    assert ten in starts(search(client, pid, scan, day), a)


def test_audit_details_name_the_resources(client: Any, redis_url: str) -> None:
    ctx = room_practice(client, practitioners=1)
    pid, (a,), scan, room = ctx["practice_id"], ctx["practitioners"], ctx["scan"], ctx["room"]
    day = next_weekday(2)
    h = hold(client, a, scan, search(client, pid, scan, day)[0]["start"]).json()
    appt = client.post("/v1/appointments", json={"hold_id": h["id"], "patient": PATIENT}).json()
    assert client.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    r = redis_sync.Redis.from_url(redis_url)
    try:
        entries = r.xrange(keys.events(pid))
    finally:
        r.close()
    details = {e[b"type"].decode(): json.loads(e[b"detail"]) for _, e in entries}
    for action in ("hold", "book", "cancel"):
        assert details[action]["resource_ids"] == [room], action
    assert "resource_ids" not in details["search"]


def at_nine(slots: list[dict[str, str]], pr: str) -> str:
    return next(s for s in starts(slots, pr) if s[11:16] == "09:00")


def test_a_series_needing_the_room_is_held_whole_or_not_at_all_and_claims_the_room_each_time(client: Any) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    monday = next_weekday(0)
    days = [monday + dt.timedelta(days=i) for i in range(3)]
    nines = [at_nine(search(client, pid, scan, d), b) for d in days]
    # practitioner a holds the room on the second day at 09:15: b's series at 09:00 overlaps it there, so none is held
    quarter = (dt.datetime.fromisoformat(nines[1]) + dt.timedelta(minutes=15)).isoformat()
    blocker = hold(client, a, scan, quarter)
    assert blocker.status_code == 201, blocker.text
    body = {"practitioner_id": b, "visit_type_id": scan, "start": nines[0], "repeat": {"every_days": 1, "count": 3}}
    r = client.post("/v1/holds", json=body)
    assert r.status_code == 409 and r.json()["code"] == "slot_unavailable", r.text
    assert [dt.datetime.fromisoformat(s) for s in r.json()["unavailable"]] == [dt.datetime.fromisoformat(nines[1])]
    assert nines[0] in starts(search(client, pid, scan, days[0]), a)  # nothing of the series was held
    assert client.delete(f"/v1/holds/{blocker.json()['id']}").status_code == 204
    r = client.post("/v1/holds", json=body)
    assert r.status_code == 201, r.text
    series = r.json()
    for d, nine in zip(days, nines, strict=True):  # every occurrence claims the room, whoever asks
        assert nine not in starts(search(client, pid, scan, d), a)
        refused = hold(client, a, scan, nine)
        assert refused.status_code == 409 and "resource_taken" in refused.json()["detail"], refused.text
        assert nine in starts(search(client, pid, ctx["talk"], d), a)  # a visit without the room is offered
    booked = client.post("/v1/appointments", json={"hold_id": series["id"], "patient": PATIENT})
    assert booked.status_code == 201, booked.text
    appts = booked.json()["appointments"]
    assert len(appts) == 3
    for nine in nines:  # booked: the room stays the appointments'
        assert hold(client, a, scan, nine).status_code == 409
    # one occurrence cancelled on its own frees the room of that day only
    assert client.post(f"/v1/appointments/{appts[1]['id']}/cancel", json={}).status_code == 200
    assert nines[1] in starts(search(client, pid, scan, days[1]), a)
    assert nines[0] not in starts(search(client, pid, scan, days[0]), a)


def test_a_waitlist_offer_needing_the_room_occupies_it_and_waits_while_it_is_taken(client: Any, redis_url: str) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan, talk = ctx["practice_id"], ctx["practitioners"], ctx["scan"], ctx["talk"]
    day = next_weekday(2)
    nine = at_nine(search(client, pid, scan, day), a)
    room_hold = hold(client, a, scan, nine)  # the room is a's at 09:00
    assert room_hold.status_code == 201, room_hold.text
    b_busy = hold(client, b, talk, nine)  # b is busy at 09:00 too
    assert b_busy.status_code == 201, b_busy.text
    body = {"visit_type_id": scan, "from_date": day.isoformat(), "to_date": day.isoformat(), "from_time": "09:00",
            "to_time": "09:30", "patient": PATIENT}  # fmt: skip
    joined = client.post(f"/v1/practices/{pid}/waitlist", json=body)
    assert joined.status_code == 201, joined.text
    wid = joined.json()["id"]
    # b is free again at 09:00, but the room is not: no offer (it would double-claim the room)
    assert client.delete(f"/v1/holds/{b_busy.json()['id']}").status_code == 204
    got = client.get(f"/v1/waitlist/{wid}").json()
    assert got["status"] == "waiting" and got["offer"] is None, got
    # a gives the room up: the entry is offered a's 09:00, and the offer occupies the room as a booking would
    assert client.delete(f"/v1/holds/{room_hold.json()['id']}").status_code == 204
    got = client.get(f"/v1/waitlist/{wid}").json()
    assert got["status"] == "offered" and got["offer"]["practitioner_id"] == a, got
    assert got["offer"]["start"] == nine
    assert nine not in starts(search(client, pid, scan, day), b)  # b is free, the room is the offer's
    refused = hold(client, b, scan, nine)
    assert refused.status_code == 409 and "resource_taken" in refused.json()["detail"], refused.text
    assert hold(client, b, talk, nine).status_code == 201  # b without the room: fine
    r = redis_sync.Redis.from_url(redis_url)
    try:
        offers = [json.loads(e[b"detail"]) for _, e in r.xrange(keys.events(pid)) if e[b"type"] == b"waitlist_offer"]
    finally:
        r.close()
    assert [o["resource_ids"] for o in offers] == [[ctx["room"]]]  # the audit names the room the offer claims
    # declining the offer gives the room back at once
    assert client.post(f"/v1/waitlist/{wid}/decline", json={}).status_code == 200
    assert hold(client, a, scan, nine).status_code == 201


def test_accepting_an_offer_needing_the_room_books_the_room(client: Any) -> None:
    ctx = room_practice(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    day = next_weekday(2)
    nine = at_nine(search(client, pid, scan, day), a)
    room_hold = hold(client, a, scan, nine)
    assert room_hold.status_code == 201, room_hold.text
    body = {"visit_type_id": scan, "practitioner_id": a, "from_date": day.isoformat(), "to_date": day.isoformat(),
            "from_time": "09:00", "to_time": "09:30", "patient": PATIENT}  # fmt: skip
    wid = client.post(f"/v1/practices/{pid}/waitlist", json=body).json()["id"]
    assert client.delete(f"/v1/holds/{room_hold.json()['id']}").status_code == 204
    accepted = client.post(f"/v1/waitlist/{wid}/accept", json={})
    assert accepted.status_code == 201, accepted.text
    assert nine not in starts(search(client, pid, scan, day), b)  # the appointment holds the room
    assert client.post(f"/v1/appointments/{accepted.json()['id']}/cancel", json={}).status_code == 200
    assert nine in starts(search(client, pid, scan, day), b)


def test_reconcile_after_flushall_rebuilds_room_claims_of_bookings_and_series_and_search_is_identical(
    world: dict[str, Any],  # noqa: F811 - the fixture imported above
) -> None:
    c, r, p = world["client"], world["redis"], world["persister"]
    ctx = room_practice(c)
    pid, (a, b), scan, room = ctx["practice_id"], ctx["practitioners"], ctx["scan"], ctx["room"]
    monday = next_weekday(0)
    days = [monday + dt.timedelta(days=i) for i in range(3)]
    nines = [at_nine(search(c, pid, scan, d), a) for d in days]
    single = hold(c, a, scan, (dt.datetime.fromisoformat(nines[0]) + dt.timedelta(hours=1)).isoformat()).json()
    assert c.post("/v1/appointments", json={"hold_id": single["id"], "patient": PATIENT}).status_code == 201
    body = {"practitioner_id": b, "visit_type_id": scan, "start": nines[0], "repeat": {"every_days": 1, "count": 3}}
    series = c.post("/v1/holds", json=body).json()
    assert c.post("/v1/appointments", json={"hold_id": series["id"], "patient": PATIENT}).status_code == 201
    t0 = dt.datetime.fromisoformat(nines[2]) + dt.timedelta(hours=2)
    closure = {"start": t0.isoformat(), "end": (t0 + dt.timedelta(minutes=45)).isoformat(), "reason": "repairs"}
    assert c.put(f"/v1/resources/{room}/closures", json=[closure]).status_code == 200
    before = {(pr, vt): search(c, pid, vt, monday, days=3, practitioner_id=pr) for pr in (a, b)
              for vt in (scan, ctx["talk"])}  # fmt: skip
    claims_before = sorted(r.zrange(keys.resource_claims(pid), 0, -1))
    assert len(claims_before) == 4  # the single booking and the three occurrences, each on the room
    p.drain()
    r.flushdb()
    asyncio.run(run_reconcile(world["redis_url"], world["db"], []))
    assert sorted(r.zrange(keys.resource_claims(pid), 0, -1)) == claims_before  # rebuilt exactly
    after = {(pr, vt): search(c, pid, vt, monday, days=3, practitioner_id=pr) for pr in (a, b)
             for vt in (scan, ctx["talk"])}  # fmt: skip
    assert after == before
    for nine in nines:
        refused = hold(c, a, scan, nine)  # the series' room is its own again, whoever asks
        assert refused.status_code == 409 and "resource_taken" in refused.json()["detail"], refused.text
    assert hold(c, a, scan, t0.isoformat()).status_code == 409  # closed again


def test_reconcile_restores_the_rooms_an_appointment_claimed_not_the_ones_its_visit_type_needs_now(
    world: dict[str, Any],  # noqa: F811 - the fixture imported above
) -> None:
    c, r, p = world["client"], world["redis"], world["persister"]
    ctx = room_practice(c)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    day = next_weekday(2)
    nine = at_nine(search(c, pid, scan, day), a)
    h = hold(c, a, scan, nine).json()
    assert c.post("/v1/appointments", json={"hold_id": h["id"], "patient": PATIENT}).status_code == 201
    room2 = c.post(f"/v1/practices/{pid}/resources", json={"name": "Room 2", "kind": "room"}).json()["id"]
    patched = c.patch(f"/v1/visit-types/{scan}", json={"resource_ids": [room2]})  # new claims need room 2 only
    assert patched.status_code == 200 and patched.json()["conflicts"] == [], patched.text
    claims_before = sorted(r.zrange(keys.resource_claims(pid), 0, -1))
    assert [m.split(b"|")[0].decode() for m in claims_before] == [ctx["room"]]  # the booking keeps room 1
    before = search(c, pid, scan, day)
    p.drain()
    r.flushdb()
    asyncio.run(run_reconcile(world["redis_url"], world["db"], []))
    assert sorted(r.zrange(keys.resource_claims(pid), 0, -1)) == claims_before  # what it claimed, not room 2
    assert search(c, pid, scan, day) == before
    assert hold(c, b, scan, nine).status_code == 201  # room 2 is free at 09:00: b may take it


def test_reconcile_brings_a_waitlist_offer_back_with_its_room(
    world: dict[str, Any],  # noqa: F811 - the fixture imported above
) -> None:
    c, r, p = world["client"], world["redis"], world["persister"]
    ctx = room_practice(c)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    day = next_weekday(2)
    nine = at_nine(search(c, pid, scan, day), a)
    room_hold = hold(c, a, scan, nine).json()
    body = {"visit_type_id": scan, "practitioner_id": a, "from_date": day.isoformat(), "to_date": day.isoformat(),
            "from_time": "09:00", "to_time": "09:30", "patient": PATIENT}  # fmt: skip
    wid = c.post(f"/v1/practices/{pid}/waitlist", json=body).json()["id"]
    assert c.delete(f"/v1/holds/{room_hold['id']}").status_code == 204
    offer = c.get(f"/v1/waitlist/{wid}").json()["offer"]
    assert offer is not None and offer["start"] == nine, offer
    claims_before = sorted(r.zrange(keys.resource_claims(pid), 0, -1))
    assert len(claims_before) == 1 and offer["hold_id"].encode() in claims_before[0]  # the offer's room claim
    p.drain()
    r.flushdb()
    asyncio.run(run_reconcile(world["redis_url"], world["db"], []))
    got = c.get(f"/v1/waitlist/{wid}").json()
    assert got["status"] == "offered" and got["offer"]["hold_id"] == offer["hold_id"], got
    assert sorted(r.zrange(keys.resource_claims(pid), 0, -1)) == claims_before  # the offer holds the room again
    refused = hold(c, b, scan, nine)
    assert refused.status_code == 409 and "resource_taken" in refused.json()["detail"], refused.text
    assert c.post(f"/v1/waitlist/{wid}/accept", json={}).status_code == 201  # and books it with the room
    assert len(r.zrange(keys.resource_claims(pid), 0, -1)) == 1


def room_taken_by_a(client: Any, practitioners: int = 2) -> tuple[dict[str, Any], dt.date, str, Any]:
    """A room practice where a holds the room at 09:00 two weekdays on: (ctx, that day, 09:00, a's hold answer)."""
    ctx = room_practice(client, practitioners=practitioners)
    day = next_weekday(2)
    nine = at_nine(search(client, ctx["practice_id"], ctx["scan"], day), ctx["practitioners"][0])
    room = hold(client, ctx["practitioners"][0], ctx["scan"], nine)
    assert room.status_code == 201, room.text
    return ctx, day, nine, room


def waiting_for(client: Any, pid: str, scan: str, pr: str, day: dt.date, frm: str = "09:00", to: str = "09:30") -> str:
    body = {"visit_type_id": scan, "practitioner_id": pr, "from_date": day.isoformat(), "to_date": day.isoformat(),
            "from_time": frm, "to_time": to, "patient": PATIENT}  # fmt: skip
    joined = client.post(f"/v1/practices/{pid}/waitlist", json=body)
    assert joined.status_code == 201, joined.text
    got = client.get(f"/v1/waitlist/{joined.json()['id']}").json()
    assert got["status"] == "waiting" and got["offer"] is None, got  # b is free at 09:00, the room is not
    return str(joined.json()["id"])


@pytest.mark.parametrize("how", ["cancel", "release", "reschedule", "decline"])
def test_a_room_freed_by_one_practitioner_is_offered_to_an_entry_waiting_for_another(client: Any, how: str) -> None:
    """Invariant 11 across practitioners: b is free at 09:00 but a holds the room; the entry waits for b's 09:00.
    Whatever gives a's room back (a cancel, a release, a reschedule away, a declined waitlist offer) offers b's
    09:00 to the entry in the same script, and the offer claims the room, before anyone else can take it."""
    ctx = room_practice(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    day = next_weekday(2)
    nine = at_nine(search(client, pid, scan, day), a)
    first = None
    room = hold(client, a, scan, nine)
    assert room.status_code == 201, room.text
    if how == "decline":  # the room is a waitlist offer's: an entry for a's 09:00 was offered it
        assert client.delete(f"/v1/holds/{room.json()['id']}").status_code == 204
        body = {"visit_type_id": scan, "practitioner_id": a, "from_date": day.isoformat(),
                "to_date": day.isoformat(), "from_time": "09:00", "to_time": "09:30", "patient": PATIENT}  # fmt: skip
        hold_b = hold(client, b, scan, nine)  # the room is b's a moment, so a's entry waits
        assert hold_b.status_code == 201, hold_b.text
        first = client.post(f"/v1/practices/{pid}/waitlist", json=body).json()["id"]
        assert client.delete(f"/v1/holds/{hold_b.json()['id']}").status_code == 204  # the room to a's entry
        assert client.get(f"/v1/waitlist/{first}").json()["offer"]["practitioner_id"] == a
    elif how in ("cancel", "reschedule"):
        booked = client.post("/v1/appointments", json={"hold_id": room.json()["id"], "patient": PATIENT})
        assert booked.status_code == 201, booked.text
    wid = waiting_for(client, pid, scan, b, day)
    if how == "cancel":
        done = client.post(f"/v1/appointments/{booked.json()['id']}/cancel", json={})
    elif how == "release":
        done = client.delete(f"/v1/holds/{room.json()['id']}")
    elif how == "reschedule":
        later = (dt.datetime.fromisoformat(nine) + dt.timedelta(hours=2)).isoformat()
        moved_to = hold(client, a, scan, later)
        assert moved_to.status_code == 201, moved_to.text
        done = client.post(
            f"/v1/appointments/{booked.json()['id']}/reschedule", json={"hold_id": moved_to.json()["id"]}
        )
    else:
        done = client.post(f"/v1/waitlist/{first}/decline", json={})
    assert done.status_code in (200, 204), done.text
    got = client.get(f"/v1/waitlist/{wid}").json()
    assert got["status"] == "offered", got
    assert got["offer"]["practitioner_id"] == b and got["offer"]["start"] == nine, got
    # the offer occupies the room: nobody else takes it, and search offers it to no one
    taken = hold(client, a, scan, nine)
    assert taken.status_code == 409 and "resource_taken" in taken.json()["detail"], taken.text
    free = search(client, pid, scan, day)
    assert nine not in starts(free, a) and nine not in starts(free, b)
    accepted = client.post(f"/v1/waitlist/{wid}/accept", json={})
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["practitioner_id"] == b and accepted.json()["start"] == nine


def test_a_room_freed_while_the_other_practitioner_is_busy_is_not_offered_to_that_practitioners_entry(
    client: Any,
) -> None:
    """The other practitioner's start is checked as any offer is: b busy at 09:00 (a visit without the room) keeps
    the entry waiting when a's room is freed; no offer overlaps b's own claim."""
    ctx, day, nine, room = room_taken_by_a(client)
    pid, (a, b), scan, talk = ctx["practice_id"], ctx["practitioners"], ctx["scan"], ctx["talk"]
    wid = waiting_for(client, pid, scan, b, day)
    assert hold(client, b, talk, nine).status_code == 201  # b is busy now too
    assert client.delete(f"/v1/holds/{room.json()['id']}").status_code == 204
    got = client.get(f"/v1/waitlist/{wid}").json()
    assert got["status"] == "waiting" and got["offer"] is None, got
    assert nine in starts(search(client, pid, scan, day), a)  # a's 09:00 and the room: free for anyone


def test_a_series_cancel_offers_each_freed_room_to_an_entry_waiting_for_another_practitioner(client: Any) -> None:
    """lua/series_cancel.lua passes one kit per practitioner group, each carrying the other practitioners (the
    kits' ARGV stepped over by wl_kit_argc): the room each occurrence frees reaches b's entries too."""
    from tests.integration.test_practice_series import as_patient

    ctx = room_practice(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    monday = next_weekday(0)
    days = [monday + dt.timedelta(days=i) for i in range(3)]
    nine = at_nine(search(client, pid, scan, days[0]), a)
    body = {"practitioner_id": a, "visit_type_id": scan, "start": nine, "repeat": {"every_days": 1, "count": 3}}
    series = client.post("/v1/holds", json=body)
    assert series.status_code == 201, series.text
    booked = client.post("/v1/appointments", json={"hold_id": series.json()["id"], "patient": PATIENT})
    assert booked.status_code == 201, booked.text
    # the first occurrence moves to b at 11:00: two practitioner groups, two kits in one call
    eleven = (dt.datetime.fromisoformat(nine) + dt.timedelta(hours=2)).isoformat()
    moved_to = hold(client, b, scan, eleven)
    assert moved_to.status_code == 201, moved_to.text
    first = booked.json()["appointments"][0]["id"]
    moved = client.post(f"/v1/appointments/{first}/reschedule", json={"hold_id": moved_to.json()["id"]})
    assert moved.status_code == 200, moved.text
    entries = [waiting_for(client, pid, scan, b, d) for d in days[1:]]
    done = as_patient(client, booked.json()["manage_token"], "POST", f"/v1/series/{booked.json()['series_id']}/cancel",
                      json={})  # fmt: skip
    assert done.status_code == 200, done.text
    for wid, d in zip(entries, days[1:], strict=True):
        got = client.get(f"/v1/waitlist/{wid}").json()
        assert got["status"] == "offered" and got["offer"]["practitioner_id"] == b, got
        assert got["offer"]["start"][:10] == d.isoformat() and got["offer"]["start"][11:16] == "09:00", got


def test_with_three_practitioners_the_room_reaches_the_last_ones_entry(client: Any) -> None:
    """Each other practitioner's part of the kit is read in turn (ARGV: its id, its number of hold ids, the ids):
    with three, a's freed room reaches an entry waiting for the third one, and an unrelated release still answers
    204 (a kit read one argument off failed every freeing call of such a practice with a 500)."""
    ctx, day, nine, room = room_taken_by_a(client, practitioners=3)
    pid, (_, b, c), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    wid = waiting_for(client, pid, scan, c, day)
    other = hold(client, b, ctx["talk"], (dt.datetime.fromisoformat(nine) + dt.timedelta(hours=1)).isoformat())
    assert other.status_code == 201, other.text
    assert client.delete(f"/v1/holds/{other.json()['id']}").status_code == 204
    assert client.delete(f"/v1/holds/{room.json()['id']}").status_code == 204
    got = client.get(f"/v1/waitlist/{wid}").json()
    assert got["status"] == "offered" and got["offer"]["practitioner_id"] == c and got["offer"]["start"] == nine, got


def test_lifting_a_room_closure_offers_the_time_it_covered_to_waiting_entries_of_any_practitioner(
    client: Any,
) -> None:
    """A closure hid 09:00-10:00 of the room from everyone; entries wait for a's and b's 09:00. Lifting it is a
    change that frees the room: in the same script, each entry is offered its practitioner's 09:00 with the room
    (two offers, never the same interval twice on the room: a's 09:00 and b's 09:00 overlap on it, so only one)."""
    ctx = room_practice(client)
    pid, (a, b), scan, room = ctx["practice_id"], ctx["practitioners"], ctx["scan"], ctx["room"]
    day = next_weekday(2)
    nine = at_nine(search(client, pid, scan, day), a)
    t0 = dt.datetime.fromisoformat(nine)
    closure = {"start": t0.isoformat(), "end": (t0 + dt.timedelta(hours=1)).isoformat(), "reason": "repairs"}
    assert client.put(f"/v1/resources/{room}/closures", json=[closure]).status_code == 200
    assert nine not in starts(search(client, pid, scan, day), b)
    for_b = waiting_for(client, pid, scan, b, day)
    for_a = waiting_for(client, pid, scan, a, day)
    lifted = client.put(f"/v1/resources/{room}/closures", json=[])
    assert lifted.status_code == 200, lifted.text
    got = {w: client.get(f"/v1/waitlist/{w}").json() for w in (for_b, for_a)}
    offered = {w: g for w, g in got.items() if g["status"] == "offered"}
    assert list(offered) == [for_b], got  # b's entry joined first; a's 09:00 needs the same room at the same time
    assert offered[for_b]["offer"]["practitioner_id"] == b and offered[for_b]["offer"]["start"] == nine
    assert got[for_a]["status"] == "waiting"
    taken = hold(client, a, scan, nine)
    assert taken.status_code == 409 and "resource_taken" in taken.json()["detail"], taken.text


def test_the_earliest_entry_gets_the_freed_room_whichever_practitioner_it_waits_for(client: Any) -> None:
    """Invariant 11, oldest first across practitioners: X joined first, for b's 09:00; Y joined later, for a's own
    09:00. a's release frees the room: X is offered b's 09:00 with it, and Y waits (the room is X's offer's now)."""
    ctx, day, nine, room = room_taken_by_a(client)
    pid, (a, b), scan = ctx["practice_id"], ctx["practitioners"], ctx["scan"]
    x = waiting_for(client, pid, scan, b, day)
    y = waiting_for(client, pid, scan, a, day)
    assert client.delete(f"/v1/holds/{room.json()['id']}").status_code == 204
    got_x, got_y = (client.get(f"/v1/waitlist/{w}").json() for w in (x, y))
    assert got_x["status"] == "offered" and got_x["offer"]["practitioner_id"] == b, got_x
    assert got_y["status"] == "waiting", got_y
