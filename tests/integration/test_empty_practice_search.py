"""A search of a practice with no practitioner answers 200 with no slots, with the availability cache on and off,
and the first practitioner added (and given a schedule) shows in the very next search: no empty roster kept for
minutes (issue 22, item 4)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.config import WEEKDAYS
from tests.support.http import next_weekday

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("cache_bytes", [64 * 1024 * 1024, 0], ids=["cache-on", "cache-off"])
def test_no_practitioner_answers_no_slots_and_a_new_one_shows_at_once(make_client: Any, cache_bytes: int) -> None:
    c = make_client(search_cache_bytes=cache_bytes)
    pid = c.post("/v1/practices", json={"name": "Empty", "timezone": "Europe/Paris"}).json()["id"]
    vt = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "30", "duration_minutes": 30}).json()["id"]
    day = next_weekday(1)
    params = {"date": day.isoformat(), "visit_type_id": vt, "days": 3}
    for _ in range(2):  # twice: the second may be answered from what the first left
        r = c.get(f"/v1/practices/{pid}/availability", params=params)
        assert r.status_code == 200, r.text
        assert r.json()["slots"] == [] and r.json()["stale"] is False
    pr = c.post(f"/v1/practices/{pid}/practitioners", json={"name": "Dr New"}).json()["id"]
    r = c.get(f"/v1/practices/{pid}/availability", params=params)
    assert r.status_code == 200 and r.json()["slots"] == [], r.text  # no schedule yet
    week = [{"day": d, "start": "09:00", "end": "10:00"} for d in WEEKDAYS]
    assert c.put(f"/v1/practitioners/{pr}/schedule", json={"weekly": week, "slot_step_minutes": 30}).status_code == 200
    r = c.get(f"/v1/practices/{pid}/availability", params=params)
    assert r.status_code == 200, r.text
    slots = r.json()["slots"]
    assert len(slots) == 3 * 2 and {s["practitioner_id"] for s in slots} == {pr}, slots
