"""Reschedule and series (issue 23 item 4): an occurrence's hold is booked with its series only, so no
appointment can be moved onto it either (lua/reschedule.lua refuses it as lua/book.lua does: 409
``slot_unavailable``, nothing changed, the series still bookable whole); once booked, each occurrence is an
appointment of its own that can be rescheduled alone, and the series reads it where it went."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.integration import test_practice_series
from tests.integration.test_practice_series import PATIENT, as_patient
from tests.integration.test_practice_series_cancel import at, practice

pytestmark = pytest.mark.integration
world = test_practice_series.world


def series_hold(c: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    body = {"practitioner_id": ctx["dr"], "visit_type_id": ctx["vt"], "start": at(ctx, 0),
            "repeat": {"every_days": 7, "count": 6}}  # fmt: skip
    s = c.post("/v1/holds", json=body)
    assert s.status_code == 201, s.text
    return s.json()  # type: ignore[no-any-return]


def single(c: Any, ctx: dict[str, Any], start: str, pr: str | None = None) -> dict[str, Any]:
    h = c.post("/v1/holds", json={"practitioner_id": pr or ctx["dr"], "visit_type_id": ctx["vt"], "start": start})
    assert h.status_code == 201, h.text
    b = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": PATIENT})
    assert b.status_code == 201, b.text
    return b.json()  # type: ignore[no-any-return]


def test_no_appointment_is_moved_onto_a_held_series_occurrence(world: dict[str, Any]) -> None:
    c, r = world["client"], world["redis"]
    ctx = practice(c)
    s = series_hold(c, ctx)
    other = single(c, ctx, at(ctx, 0, "11:00"))
    occurrence = s["holds"][2]
    moved = c.post(f"/v1/appointments/{other['id']}/reschedule", json={"hold_id": occurrence["id"]})
    assert moved.status_code == 409 and moved.json()["code"] == "slot_unavailable", moved.text
    assert c.get(f"/v1/appointments/{other['id']}").json() == {**other, "manage_token": None}  # unchanged
    assert c.get(f"/v1/holds/{occurrence['id']}").status_code == 200  # still held
    b = c.post("/v1/appointments", json={"hold_id": s["id"], "patient": PATIENT})  # still bookable whole
    assert b.status_code == 201, b.text
    assert [a["start"] for a in b.json()["appointments"]] == [h["start"] for h in s["holds"]]
    kinds = [f[b"type"] for _, f in r.xrange(f"bk:v1:{{p:{ctx['practice_id']}}}:events")]
    assert b"reschedule" not in kinds


def test_a_booked_occurrence_is_rescheduled_on_its_own(world: dict[str, Any]) -> None:
    c = world["client"]
    ctx = practice(c, practitioners=2)
    s = series_hold(c, ctx)
    b = c.post("/v1/appointments", json={"hold_id": s["id"], "patient": PATIENT}).json()
    token, appts = b["manage_token"], b["appointments"]
    dr1 = ctx["practitioners"][1]
    # onto a time another occurrence holds: refused as any overlap is
    h = c.post("/v1/holds", json={"practitioner_id": ctx["dr"], "visit_type_id": ctx["vt"], "start": at(ctx, 1)})
    assert h.status_code == 409, h.text
    h = c.post("/v1/holds", json={"practitioner_id": dr1, "visit_type_id": ctx["vt"], "start": at(ctx, 1, "10:30")})
    assert h.status_code == 201, h.text
    moved = as_patient(c, token, "POST", f"/v1/appointments/{appts[1]['id']}/reschedule",
                       json={"hold_id": h.json()["id"]})  # fmt: skip
    assert moved.status_code == 200 and moved.json()["version"] == 2, moved.text
    got = c.get(f"/v1/series/{b['series_id']}").json()["appointments"]
    assert got[1]["practitioner_id"] == dr1 and got[1]["start"] == at(ctx, 1, "10:30")
    assert [a["start"] for i, a in enumerate(got) if i != 1] == [a["start"] for i, a in enumerate(appts) if i != 1]
    assert all(a["status"] == "booked" for a in got)
    assert dt.datetime.fromisoformat(got[1]["start"]).strftime("%H:%M") == "10:30"
