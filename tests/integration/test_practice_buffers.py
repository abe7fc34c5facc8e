"""Buffers before and after a visit (API.md, "Buffers, daily limits, ..."): a claim occupies its practitioner over
[start - before, end + after]; search, hold, book, cancel, reschedule and the schedule-conflict report all use
that occupation, and search never offers what hold refuses. Over HTTP, on the real Redis."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration

PATIENT = {"name": "B", "email": "b@example.org"}


def hold(c: Any, pr: str, vt: str, start: str) -> Any:
    return c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})


def book(c: Any, pr: str, vt: str, start: str) -> dict[str, Any]:
    h = hold(c, pr, vt, start)
    assert h.status_code == 201, h.text
    r = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": PATIENT})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def visit_type(c: Any, pid: str, minutes: int, before: int = 0, after: int = 0, **more: Any) -> str:
    body = {"name": f"{minutes}+{before}+{after}", "duration_minutes": minutes, **more}
    if before:
        body["buffer_before_minutes"] = before
    if after:
        body["buffer_after_minutes"] = after
    r = c.post(f"/v1/practices/{pid}/visit-types", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["buffer_before_minutes"] == before and out["buffer_after_minutes"] == after
    return out["id"]  # type: ignore[no-any-return]


def hhmm(slots: list[dict[str, str]]) -> list[str]:
    return [s["start"][11:16] for s in slots]


def at(slots: list[dict[str, str]], local: str) -> str:
    return next(s["start"] for s in slots if s["start"][11:16] == local)


def test_after_buffer_pushes_every_visit_type_past_it_and_cancel_frees_it(client: Any) -> None:
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=5)
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
    surgery = visit_type(client, pid, 30, after=10)
    prepped = visit_type(client, pid, 15, before=10)
    day = next_weekday(2)
    free = search(client, pid, surgery, day)
    appt = book(client, dr, surgery, at(free, "09:00"))  # occupies 09:00-09:40
    after_plain = [t for t in hhmm(search(client, pid, plain, day)) if t >= "09:00"]
    assert after_plain[0] == "09:40"  # the next slot of any visit type starts at the buffer's end
    assert "08:45" in hhmm(search(client, pid, plain, day))  # ends at 09:00: the visit has no before-buffer
    assert next(t for t in hhmm(search(client, pid, prepped, day)) if t >= "09:00") == "09:50"
    plain_slots = search(client, pid, plain, day)
    inside = (dt.datetime.fromisoformat(at(plain_slots, "09:40")) - dt.timedelta(minutes=5)).isoformat()
    r = hold(client, dr, plain, inside)  # 09:35-09:50: inside the after-buffer
    assert r.status_code == 409 and r.json()["code"] == "slot_unavailable"
    # a before-buffer reaching back into another visit is refused too: 'prepped' at 09:45 occupies 09:35-10:00
    nine45 = (dt.datetime.fromisoformat(at(plain_slots, "09:40")) + dt.timedelta(minutes=5)).isoformat()
    assert hold(client, dr, prepped, nine45).status_code == 409
    r = client.post(f"/v1/appointments/{appt['id']}/cancel", json={})
    assert r.status_code == 200, r.text
    again = hhmm(search(client, pid, plain, day))
    assert "09:30" in again and "09:35" in again  # the buffer is free again too
    h = hold(client, dr, plain, inside)
    assert h.status_code == 201, h.text


def test_a_held_buffer_blocks_and_a_release_frees_it(client: Any) -> None:
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=5)
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
    surgery = visit_type(client, pid, 30, before=5, after=10)
    day = next_weekday(3)
    h = hold(client, dr, surgery, at(search(client, pid, surgery, day), "10:00"))  # occupies 09:55-10:40
    assert h.status_code == 201, h.text
    assert not {"09:45", "09:50", "10:30", "10:35"} & set(hhmm(search(client, pid, plain, day)))
    assert {"09:40", "10:40"} <= set(hhmm(search(client, pid, plain, day)))
    assert client.delete(f"/v1/holds/{h.json()['id']}").status_code == 204
    assert {"09:45", "09:50", "10:30", "10:35"} <= set(hhmm(search(client, pid, plain, day)))


def test_buffers_may_leave_the_window_but_never_enter_a_closure(client: Any) -> None:
    day = next_weekday(1)
    ctx = setup_practice(
        client,
        durations=(30,),
        weekly=[{"day": d, "start": "09:00", "end": "12:00"} for d in ("mon", "tue", "wed", "thu", "fri")],
    )
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    padded = visit_type(client, pid, 30, before=15, after=15)
    assert hhmm(search(client, pid, padded, day))[0] == "09:00"  # its before-buffer lies outside the window
    assert hhmm(search(client, pid, padded, day))[-1] == "11:30"
    nine = dt.datetime.fromisoformat(search(client, pid, plain, day)[0]["start"])
    closure = {"start": (nine - dt.timedelta(minutes=30)).isoformat(), "end": nine.isoformat(), "reason": "cleaning"}
    body = {"weekly": [{"day": d, "start": "09:00", "end": "12:00"} for d in ("mon", "tue", "wed", "thu", "fri")],
            "closures": [closure]}  # fmt: skip
    r = client.put(f"/v1/practitioners/{dr}/schedule", json=body)
    assert r.status_code == 200, r.text
    assert hhmm(search(client, pid, plain, day))[0] == "09:00"
    assert hhmm(search(client, pid, padded, day))[0] == "09:15"  # 09:00 would put its buffer in the closure
    assert hold(client, dr, padded, nine.isoformat()).status_code == 409


def test_schedule_conflicts_report_a_buffer_reaching_into_a_new_closure(client: Any) -> None:
    weekly = [{"day": d, "start": "09:00", "end": "12:00"} for d in ("mon", "tue", "wed", "thu", "fri")]
    ctx = setup_practice(client, durations=(30,), weekly=weekly)
    pid, dr = ctx["practice_id"], ctx["practitioners"][0]
    padded = visit_type(client, pid, 30, after=20)
    day = next_weekday(4)
    slots = search(client, pid, padded, day)
    appt = book(client, dr, padded, at(slots, "10:00"))  # occupies 10:00-10:50
    end = dt.datetime.fromisoformat(appt["end"])
    closure = {"start": (end + dt.timedelta(minutes=10)).isoformat(), "end": (end + dt.timedelta(hours=1)).isoformat()}
    r = client.put(f"/v1/practitioners/{dr}/schedule", json={"weekly": weekly, "closures": [closure]})
    assert r.status_code == 200 and r.json()["conflicts"] == [appt["id"]], r.text
    closure["start"] = (end + dt.timedelta(minutes=20)).isoformat()  # where the buffer ends: no conflict
    r = client.put(f"/v1/practitioners/{dr}/schedule", json={"weekly": weekly, "closures": [closure]})
    assert r.status_code == 200 and r.json()["conflicts"] == [], r.text
    assert client.get(f"/v1/appointments/{appt['id']}").json()["status"] == "booked"


def test_reschedule_moves_the_occupation_with_the_visit(client: Any) -> None:
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=5)
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
    surgery = visit_type(client, pid, 30, after=10)
    day = next_weekday(2)
    appt = book(client, dr, surgery, at(search(client, pid, surgery, day), "09:00"))
    target = hold(client, dr, surgery, at(search(client, pid, surgery, day), "11:00"))
    assert target.status_code == 201, target.text
    r = client.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": target.json()["id"]})
    assert r.status_code == 200, r.text
    free = set(hhmm(search(client, pid, plain, day)))
    assert {"09:00", "09:30", "09:35"} <= free  # the old occupation, buffer included, is free again
    assert not {"11:30", "11:35"} & free and "11:40" in free


def test_every_searched_slot_can_be_held_and_no_other_start_can(client: Any) -> None:
    """Differential: after a random mix of claims with random buffers, for every visit type, the starts search
    offers are exactly the grid starts hold accepts."""
    rng = random.Random(23)
    ctx = setup_practice(client, durations=(15,), practitioners=2, slot_step_minutes=5)
    pid, prs = ctx["practice_id"], ctx["practitioners"]
    vts = [ctx["visit_types"][15]]
    for minutes, before, after in ((20, 5, 10), (30, 0, 15), (10, 20, 0), (45, 10, 5)):
        vts.append(visit_type(client, pid, minutes, before=before, after=after))
    day = next_weekday(2)
    for _ in range(14):
        vt, pr = rng.choice(vts), rng.choice(prs)
        free = search(client, pid, vt, day, practitioner_id=pr)
        if not free:
            continue
        start = rng.choice(free)["start"]
        if rng.random() < 0.5:
            book(client, pr, vt, start)
        else:
            assert hold(client, pr, vt, start).status_code == 201
    first = dt.datetime.fromisoformat(search(client, pid, vts[0], day, practitioner_id=prs[0])[0]["start"])
    tz = first.tzinfo
    grid = [dt.datetime.combine(day, dt.time(8, 0), tz) + dt.timedelta(minutes=5 * i) for i in range(48)]
    checked = 0
    for vt in vts:
        for pr in prs:
            offered = {s["start"] for s in search(client, pid, vt, day, practitioner_id=pr)}
            for t in grid:
                r = hold(client, pr, vt, t.isoformat())
                assert (r.status_code == 201) == (t.isoformat() in offered), (vt, pr, t, r.text)
                if r.status_code == 201:
                    assert client.delete(f"/v1/holds/{r.json()['id']}").status_code == 204
                checked += 1
    assert checked == len(vts) * len(prs) * len(grid)


def test_patch_applies_to_new_claims_at_once_and_reports_conflicts(client: Any) -> None:
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=5)
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
    surgery = visit_type(client, pid, 30)
    day = next_weekday(2)
    first = book(client, dr, surgery, at(search(client, pid, surgery, day), "09:00"))
    book(client, dr, plain, at(search(client, pid, plain, day), "09:30"))  # right after it
    alone = book(client, dr, surgery, at(search(client, pid, surgery, day), "10:30"))
    r = client.patch(f"/v1/visit-types/{surgery}", json={"buffer_after_minutes": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["buffer_after_minutes"] == 10 and body["buffer_before_minutes"] == 0 and body["max_per_day"] is None
    assert body["conflicts"] == [first["id"]]  # its occupation 09:00-09:40 now overlaps the 09:30 visit
    for a in (first, alone):  # nothing booked is moved or cancelled
        got = client.get(f"/v1/appointments/{a['id']}").json()
        assert got["status"] == "booked" and got["start"] == a["start"] and got["version"] == 1
    # the next claim takes the new buffer at once: a surgery at 11:30 occupies 11:30-12:10
    h = hold(client, dr, surgery, at(search(client, pid, surgery, day), "11:00"))
    assert h.status_code == 201, h.text
    free = set(hhmm(search(client, pid, plain, day)))
    assert not {"11:30", "11:35"} & free and "11:40" in free
    # and a surgery right before a booked visit is no longer offered (its after-buffer would overlap)
    offered = hhmm(search(client, pid, surgery, day))
    assert "09:50" in offered and "09:55" not in offered  # 09:55-10:25 and 10 min more reach the 10:30 visit
    listed = client.get(f"/v1/practices/{pid}/visit-types").json()["items"]
    assert next(v for v in listed if v["id"] == surgery)["buffer_after_minutes"] == 10
    r = client.patch(f"/v1/visit-types/{surgery}", json={"max_per_day": 1})
    assert r.status_code == 200 and r.json()["buffer_after_minutes"] == 10, r.text
    assert sorted(r.json()["conflicts"]) == sorted([first["id"], alone["id"]])  # the overlap, and the second of the day


def test_patch_refuses_bad_rules_and_changes_nothing(client: Any) -> None:
    ctx = setup_practice(client, durations=(30,))
    pid, vt = ctx["practice_id"], ctx["visit_types"][30]
    day = next_weekday(2)
    before = search(client, pid, vt, day)
    for body in ({"buffer_after_minutes": 121}, {"buffer_before_minutes": -1}, {"max_per_day": 0},
                 {"duration_minutes": 45}, {"buffer_after_minutes": "10"}):  # fmt: skip
        r = client.patch(f"/v1/visit-types/{vt}", json=body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (body, r.text)
    r = client.patch(f"/v1/visit-types/{pid}.vnothere", json={"buffer_after_minutes": 5})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    got = client.get(f"/v1/practices/{pid}/visit-types").json()["items"][0]
    assert (got["buffer_before_minutes"], got["buffer_after_minutes"], got["max_per_day"]) == (0, 0, None)
    assert search(client, pid, vt, day) == before
    r = client.post(f"/v1/practices/{pid}/visit-types", json={"name": "x", "duration_minutes": 30,
                                                              "buffer_before_minutes": 121})  # fmt: skip
    assert r.status_code == 422


def test_a_waitlist_offer_occupies_its_buffers_as_a_booking_would(client: Any) -> None:
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=5)
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
    surgery = visit_type(client, pid, 30, after=10)
    day = next_weekday(2)
    appt = book(client, dr, surgery, at(search(client, pid, surgery, day), "09:00"))
    body = {"visit_type_id": surgery, "from_date": day.isoformat(), "to_date": day.isoformat(),
            "from_time": "09:00", "to_time": "09:30", "patient": PATIENT}  # fmt: skip
    entry = client.post(f"/v1/practices/{pid}/waitlist", json=body)
    assert entry.status_code == 201, entry.text
    assert client.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    got = client.get(f"/v1/waitlist/{entry.json()['id']}").json()
    assert got["status"] == "offered" and got["offer"]["start"][11:16] == "09:00", got
    free = set(hhmm(search(client, pid, plain, day)))
    assert not {"09:30", "09:35"} & free and "09:40" in free  # the offer's after-buffer is taken too
    inside = (dt.datetime.fromisoformat(got["offer"]["end"]) + dt.timedelta(minutes=5)).isoformat()
    assert hold(client, dr, plain, inside).status_code == 409


def test_a_waitlist_offer_is_not_made_where_its_buffers_would_overlap(client: Any) -> None:
    """A freed interval is offered to a waiting entry only where the offer's whole occupation is free: here the
    entry's visit type needs 20 minutes after it, and a booking sits 10 minutes after the freed visit."""
    ctx = setup_practice(client, durations=(15,), slot_step_minutes=5)
    pid, dr, plain = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][15]
    short_after, long_after = visit_type(client, pid, 30, after=10), visit_type(client, pid, 30, after=20)
    day = next_weekday(2)
    appt = book(client, dr, short_after, at(search(client, pid, short_after, day), "09:00"))
    book(client, dr, plain, at(search(client, pid, plain, day), "09:40"))
    body = {"visit_type_id": long_after, "from_date": day.isoformat(), "to_date": day.isoformat(),
            "from_time": "09:00", "to_time": "10:00", "patient": PATIENT}  # fmt: skip
    entry = client.post(f"/v1/practices/{pid}/waitlist", json=body)
    assert entry.status_code == 201, entry.text
    assert client.post(f"/v1/appointments/{appt['id']}/cancel", json={}).status_code == 200
    got = client.get(f"/v1/waitlist/{entry.json()['id']}").json()
    assert got["status"] == "waiting" and got["offer"] is None, got  # 09:00 + 30 + 20 reaches the 09:40 booking
    assert "09:00" not in hhmm(search(client, pid, long_after, day))  # search agrees
    assert "09:00" in hhmm(search(client, pid, short_after, day))  # the freed visit itself is free again
