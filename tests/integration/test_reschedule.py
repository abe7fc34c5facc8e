"""Reschedule: one atomic step, old interval offered again, version + 1; any failure changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration


def hold(c: Any, pr: str, vt: str, start: str) -> Any:
    return c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})


def booked(c: Any, pr: str, vt: str, start: str) -> dict[str, Any]:
    h = hold(c, pr, vt, start).json()
    r = c.post("/v1/appointments", json={"hold_id": h["id"], "patient": {"name": "R", "email": "r@example.org"}})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def starts(c: Any, pid: str, vt: str, day: Any) -> list[str]:
    return [s["start"] for s in search(c, pid, vt, day)]


def test_reschedule_to_another_practitioner_moves_atomically(client: Any, rsync: Any) -> None:
    ctx = setup_practice(client, durations=(30,), practitioners=2)
    pid, (dr_a, dr_b), vt = ctx["practice_id"], ctx["practitioners"], ctx["visit_types"][30]
    day = next_weekday(2)
    free_a = search(client, pid, vt, day, practitioner_id=dr_a)
    appt = booked(client, dr_a, vt, free_a[0]["start"])
    target = search(client, pid, vt, day, practitioner_id=dr_b)[4]
    h = hold(client, dr_b, vt, target["start"]).json()
    r = client.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": h["id"]})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["version"] == 2 and moved["practitioner_id"] == dr_b and moved["start"] == target["start"]
    assert moved["id"] == appt["id"] and moved["status"] == "booked"
    assert search(client, pid, vt, day, practitioner_id=dr_a) == free_a  # the old interval is offered again
    assert target["start"] not in [s["start"] for s in search(client, pid, vt, day, practitioner_id=dr_b)]
    again = client.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": h["id"]})
    assert again.status_code == 409 and again.json()["code"] == "hold_used"
    kinds = [f[b"type"] for _, f in rsync.xrange(f"bk:v1:{{p:{pid}}}:events")]
    assert kinds.count(b"reschedule") == 1


def test_reschedule_later_the_same_morning_frees_the_old_interval(client: Any) -> None:
    ctx = setup_practice(client, durations=(30,))
    pid, dr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(3)
    free = search(client, pid, vt, day)
    nine = next(s["start"] for s in free if s["start"][11:16] == "09:00")
    nine15 = next(s["start"] for s in free if s["start"][11:16] == "09:15")
    appt = booked(client, dr, vt, nine)
    # 09:15 overlaps the appointment itself, so it cannot be held: a reschedule moves onto a live hold, hence
    # onto an interval that does not overlap the appointment (a documented limit); 09:30 is such an interval
    assert hold(client, dr, vt, nine15).status_code == 409
    nine30 = next(s["start"] for s in free if s["start"][11:16] == "09:30")
    h = hold(client, dr, vt, nine30).json()
    r = client.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": h["id"]})
    assert r.status_code == 200 and r.json()["start"] == nine30
    assert nine in starts(client, pid, vt, day)


def test_failed_reschedules_change_nothing(make_client: Any) -> None:
    c = make_client(hold_ttl_seconds=1, background=False)
    ctx = setup_practice(c, durations=(30,))
    pid, dr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(4)
    free = search(c, pid, vt, day)
    appt = booked(c, dr, vt, free[0]["start"])
    other = booked(c, dr, vt, free[6]["start"])
    snapshot = search(c, pid, vt, day)
    import time

    h = hold(c, dr, vt, free[10]["start"]).json()
    time.sleep(1.2)
    r = c.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": h["id"]})
    assert r.status_code == 410 and r.json()["code"] == "hold_expired"
    assert c.get(f"/v1/appointments/{appt['id']}").json() == {**appt, "manage_token": None}
    assert search(c, pid, vt, day) == snapshot
    missing = c.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": h["id"][:-3] + "zzz"})
    assert missing.status_code == 404
    c.post(f"/v1/appointments/{other['id']}/cancel")
    h2 = hold(c, dr, vt, free[12]["start"]).json()
    r = c.post(f"/v1/appointments/{other['id']}/reschedule", json={"hold_id": h2["id"]})
    assert r.status_code == 409 and r.json()["code"] == "appointment_cancelled"
    assert c.get(f"/v1/holds/{h2['id']}").status_code == 200  # the hold is untouched
    foreign = setup_practice(c, durations=(30,))
    fh = hold(
        c,
        foreign["practitioners"][0],
        foreign["visit_types"][30],
        search(c, foreign["practice_id"], foreign["visit_types"][30], day)[0]["start"],
    ).json()
    r = c.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": fh["id"]})
    assert r.status_code == 404  # a hold of another practice does not exist for this appointment
