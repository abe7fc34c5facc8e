"""The typed stream events: one entry of every event type, appended by the real scripts on the real Redis
(through the HTTP API), decodes into its Struct with its payload typed."""

from __future__ import annotations

import time
from typing import Any, get_args

import msgspec
import pytest

from engine import events as ev
from engine import keys
from engine.model import ApiKey, Patient, Practice, Practitioner, Schedule, VisitType
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration

PATIENT = {"name": 'Zoë O\'Brien / "Zo"', "email": "zoe@example.org", "phone": "+33 1 23 45 67 89"}


def no_patient(raw: str) -> bool:
    """No piece of PATIENT in ``raw`` (pieces no id can contain: an id is letters, digits, '.', '-', '_'; "zo"
    alone was found inside a random entry id)."""
    low = raw.lower()
    return not any(p in low for p in ("zoë", "zo\\u00eb", "o'brien", "zoe@", "45 67", '/ \\"zo'))


def _hold(c: Any, pr: str, vt: str, start: str) -> dict[str, Any]:
    r = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _join(c: Any, pid: str, vt: str, pr: str, day: Any) -> dict[str, Any]:
    body = {"visit_type_id": vt, "practitioner_id": pr, "from_date": day.isoformat(), "to_date": day.isoformat(),
            "patient": PATIENT}  # fmt: skip
    r = c.post(f"/v1/practices/{pid}/waitlist", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _stream(rsync: Any, pid: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return rsync.xrange(keys.events(pid))  # type: ignore[no-any-return]


def _one_of_each(make_client: Any, rsync: Any) -> tuple[dict[str, Any], dict[str, Any], list[ev.Event]]:
    """Every kind of change once; returns (the practice set up, the ids involved, the decoded stream)."""
    c = make_client()
    ctx = setup_practice(c, practitioners=2)
    pid, (dr_a, dr_b), vt = ctx["practice_id"], ctx["practitioners"], ctx["visit_types"][30]
    key = c.post(f"/v1/practices/{pid}/api-keys").json()
    assert c.delete(f"/v1/practices/{pid}/api-keys/{key['id']}").status_code == 204
    room = c.post(f"/v1/practices/{pid}/resources", json={"name": "Room", "kind": "room"})
    assert room.status_code == 201, room.text
    day = next_weekday(2)
    free_a = search(c, pid, vt, day, practitioner_id=dr_a)
    # the waitlist: two entries join; the released hold is offered to the first, who declines it: the second has
    # it and leaves; time the schedule opens is offered to the first, who accepts it: the one booking below
    first, second = (_join(c, pid, vt, dr_a, day) for _ in range(2))
    released = _hold(c, dr_a, vt, free_a[0]["start"])
    assert c.delete(f"/v1/holds/{released['id']}").status_code == 204
    assert c.post(f"/v1/waitlist/{first['id']}/decline", json={}).status_code == 200
    assert c.delete(f"/v1/waitlist/{second['id']}").status_code == 204
    longer = [{"day": d, "start": "08:00", "end": "13:00"} for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
    assert c.put(f"/v1/practitioners/{dr_a}/schedule", json={"weekly": longer}).status_code == 200
    offer = c.get(f"/v1/waitlist/{first['id']}").json()["offer"]
    booked_hold = {"id": offer["hold_id"]}  # the offer is a hold; accepting it books it
    r = c.post(f"/v1/waitlist/{first['id']}/accept", json={})
    assert r.status_code == 201, r.text
    appt = r.json()
    target = _hold(c, dr_b, vt, search(c, pid, vt, day, practitioner_id=dr_b)[3]["start"])
    r = c.post(f"/v1/appointments/{appt['id']}/reschedule", json={"hold_id": target["id"]})
    assert r.status_code == 200, r.text
    r = c.post(f"/v1/appointments/{appt['id']}/cancel", json={"reason": "moved away"})
    assert r.status_code == 200, r.text
    # an expiry: a hold of 1 second, expired by the sweeper of an app that runs it, which offers its interval to
    # the entry waiting now, an offer of 1 second that lapses
    _join(c, pid, vt, dr_a, day)
    sweeping = make_client(hold_ttl_seconds=1, waitlist_offer_seconds=1, background=True)
    expiring = _hold(sweeping, dr_a, vt, free_a[5]["start"])
    deadline = time.time() + 30
    while time.time() < deadline and not {b"expire", b"waitlist_lapse"} <= {f[b"type"] for _, f in
                                                                          _stream(rsync, pid)}:  # fmt: skip
        time.sleep(0.2)
    used = {
        "key": key,
        "released": released,
        "booked_hold": booked_hold,
        "appt": appt,
        "target": target,
        "expiring": expiring,
        "free_a": free_a,
        "day": day,
    }
    return ctx, used, [ev.from_stream(i, f) for i, f in _stream(rsync, pid)]


def test_one_entry_of_every_event_type_decodes_into_its_typed_payload(make_client: Any, rsync: Any) -> None:
    ctx, used, decoded = _one_of_each(make_client, rsync)
    pid, (dr_a, dr_b), vt = ctx["practice_id"], ctx["practitioners"], ctx["visit_types"][30]
    assert {e.__struct_config__.tag for e in decoded} == set(get_args(ev.EventType))
    by_type: dict[type[Any], list[Any]] = {}
    for e in decoded:
        by_type.setdefault(type(e), []).append(e)
        assert e.practice_id == pid and e.at > 0 and e.event_id

    (practice,) = by_type[ev.PracticeSaved]
    assert practice.data == Practice(id=pid, name="Test practice", timezone="Europe/Paris") and practice.seq == 0
    assert isinstance(practice.detail, ev.NoDetail)
    assert sorted(p.data.id for p in by_type[ev.PractitionerSaved]) == sorted([dr_a, dr_b])
    assert all(isinstance(p.data, Practitioner) and p.data.practice_id == pid for p in by_type[ev.PractitionerSaved])
    (visit_type,) = by_type[ev.VisitTypeSaved]
    assert visit_type.data == VisitType(id=vt, practice_id=pid, name="30 min", duration_minutes=30)

    (resource,) = by_type[ev.ResourceSaved]
    assert resource.data.practice_id == pid and resource.data.kind == "room" and resource.seq == 0

    saved, revoked = by_type[ev.ApiKeySaved][0], by_type[ev.ApiKeyRevoked][0]
    assert isinstance(saved.data, ApiKey) and saved.data.id == used["key"]["id"] and len(saved.data.hash) == 64
    assert revoked.data == saved.data  # the record as it was before revoking

    schedule = by_type[ev.ScheduleChanged][0]
    assert isinstance(schedule.data, Schedule) and len(schedule.data.weekly) == 7 and schedule.seq > 0
    assert schedule.detail == ev.ScheduleDetail(
        windows=7, closures=0, slot_step_minutes=15, horizon_days=90, min_notice_minutes=0
    )

    (first_search, *_) = by_type[ev.SearchPerformed]
    assert first_search.detail == ev.SearchDetail(
        date=used["day"].isoformat(),
        days=1,
        visit_type_id=vt,
        practitioner_id=dr_a,
        count=len(used["free_a"]),  # a first search: computed and audited by the search script in one step
    )
    assert first_search.data is None

    placed = {h.hold_id: h for h in by_type[ev.Held]}
    expiring = placed[used["expiring"]["id"]]
    assert expiring.detail.visit_type_id == vt and expiring.detail.end - expiring.detail.start == 1800
    assert expiring.detail.expires_ms > expiring.at and expiring.practitioner_id == dr_a
    (released,) = by_type[ev.HoldReleased]
    assert released.hold_id == used["released"]["id"] and isinstance(released.detail, ev.NoDetail)
    (expired,) = by_type[ev.HoldExpired]
    assert expired.hold_id == used["expiring"]["id"] and expired.actor == "sweeper"
    assert expired.detail.expires_ms == expiring.detail.expires_ms

    appt_id = used["appt"]["id"]
    (booked,) = by_type[ev.AppointmentBooked]
    assert booked.appointment_id == appt_id and booked.hold_id == used["booked_hold"]["id"]
    assert isinstance(booked.data, ev.AppointmentRecord) and booked.data.patient == Patient(**PATIENT)
    assert (booked.data.id, booked.data.status, booked.data.version) == (appt_id, "booked", 1)
    assert booked.data.practitioner_id == dr_a and booked.data.hold_id == booked.hold_id
    assert len(booked.data.manage_hash) == 64
    assert (booked.detail.start, booked.detail.end, booked.detail.version) == (booked.data.start, booked.data.end, 1)
    assert booked.detail.patient_id and no_patient(booked.detail_raw)

    (moved,) = by_type[ev.AppointmentRescheduled]
    assert moved.data.version == moved.detail.version == 2 and moved.data.practitioner_id == dr_b
    assert moved.data.patient == booked.data.patient and moved.data.hold_id == used["target"]["id"]
    assert (moved.detail.from_practitioner_id, moved.detail.from_start) == (dr_a, booked.data.start)
    assert moved.detail.start == moved.data.start and moved.detail.visit_type_id == vt

    (cancelled,) = by_type[ev.AppointmentCancelled]
    assert cancelled.data == ev.CancelRecord(id=appt_id, status="cancelled", version=3, cancel_reason="moved away")
    assert cancelled.detail == ev.CancelDetail(version=3, start=moved.data.start, end=moved.data.end, has_reason=True)

    joined = by_type[ev.WaitlistJoined]
    assert len(joined) == 3 and all(j.data.status == "waiting" and j.data.version == 1 for j in joined)
    assert [j.data.order for j in joined] == [1, 2, 3] and joined[0].data.patient == Patient(**PATIENT)
    offered = by_type[ev.WaitlistOffered]
    assert [o.detail.cause for o in offered] == ["release", "waitlist_decline", "schedule", "expire"]
    first_offer = offered[0]
    assert first_offer.data.status == "offered" and first_offer.data.offer is not None
    assert first_offer.hold_id == first_offer.data.offer.hold_id and first_offer.detail.expires_ms
    (accepted,) = by_type[ev.WaitlistAccepted]
    assert (
        accepted.detail.appointment_id == appt_id == accepted.data.appointment_id and accepted.data.status == "booked"
    )
    assert accepted.hold_id == booked.hold_id and accepted.seq == booked.seq + 1  # right after the booking
    (declined,) = by_type[ev.WaitlistDeclined]
    assert declined.data.status == "waiting" and declined.data.had == [f"{dr_a}|{first_offer.detail.start}|"
                                                                       f"{first_offer.detail.end}"]  # fmt: skip
    (left,) = by_type[ev.WaitlistLeft]
    assert left.data.status == "left" and left.detail.start == offered[1].detail.start
    (lapsed,) = by_type[ev.WaitlistLapsed]
    assert lapsed.actor == "sweeper" and lapsed.data.lapsed_ms and lapsed.hold_id == offered[3].hold_id
    for w in (*joined, *offered, accepted, declined, left, lapsed):  # no patient data in the audit detail
        assert no_patient(w.detail_raw) and w.detail.entry_id == w.data.id

    for e in decoded:  # the encoder writes what the scripts write: decoding it gives the event back
        fields = ev.to_stream(e)
        again = ev.from_stream(e.event_id, {k.encode(): v.encode() for k, v in fields.items()})
        assert again == msgspec.structs.replace(e, detail_raw=fields["detail"])


def test_old_empty_details_still_decode_and_unknown_versions_are_refused() -> None:
    entry = {  # a release as the first scripts wrote it: cjson encoded an empty detail as an array
        b"v": b"1",
        b"type": b"release",
        b"seq": b"7",
        b"at": b"1700000000000",
        b"actor": b"public",
        b"practice_id": b"p1",
        b"practitioner_id": b"r1",
        b"hold_id": b"h1",
        b"appointment_id": b"",
        b"request_id": b"",
        b"detail": b"[]",
        b"data": b"",
    }
    e = ev.from_stream(b"1700000000000-0", entry)
    assert isinstance(e, ev.HoldReleased) and e.detail == ev.NoDetail() and e.detail_raw == "[]"
    assert (e.seq, e.at, e.hold_id, e.appointment_id, e.data) == (7, 1_700_000_000_000, "h1", "", None)
    with pytest.raises(ValueError, match="version"):
        ev.from_stream(b"1700000000000-0", {**entry, b"v": b"2"})
