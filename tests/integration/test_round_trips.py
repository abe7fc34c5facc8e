"""Redis round trips per operation (issue 20, item 10), counted on the app's own client (tests/support/round_trips.py)
while a public client (abuse limits apply) drives the real HTTP app in process, on a warm process (scripts loaded,
practice and search context cached: every operation ran once before).

| operation | round trips |
|---|---|
| search, cache warm | 1 (the versions read), and its audit in the process's next batch (one pipeline per interval for all) |
| hold | 2: limit, hold |
| booking, with or without Idempotency-Key | 2: limit (which also takes the hold off the client's cap), book (which answers a replay itself) |
| cancel | 2: the appointment read once (authorisation, then the cancel goes on from it), cancel |
| cancelling again | 1: the read (cancelled is final) |
| reschedule | 3: the appointment and the target hold read together, reschedule, the hold off the client's cap |
| hold replayed under its Idempotency-Key | 3: limit, hold (answering the replay), the new hold id off the cap |

Every answer built without reading the appointment again is checked against what a read then answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.support.http import next_weekday, search, setup_practice
from tests.support.round_trips import READS, RoundTrips, Trips

pytestmark = pytest.mark.integration
PATIENT = {"name": "Ada L", "email": "ada@example.org"}
LIMIT, HOLD, BOOK, CANCEL, RESCHEDULE, FORGET = "EVALSHA", "EVALSHA", "EVALSHA", "EVALSHA", "EVALSHA", "ZREM"


def public_client(make_client: Callable[..., TestClient[Any]], **settings: Any) -> tuple[TestClient[Any], Any]:
    """A practice set up by the admin, then the client as a public one of its own (its own abuse-limit counters)."""
    c = make_client(client_header="X-Client-Id", **settings)
    ctx = setup_practice(c, practitioners=2)
    del c.headers["Authorization"]
    c.headers["X-Client-Id"] = f"trips-{uuid.uuid4().hex}"
    return c, ctx


class Flow:
    def __init__(self, c: TestClient[Any], ctx: dict[str, Any]) -> None:
        self.c, self.pid, self.vt = c, ctx["practice_id"], ctx["visit_types"][30]
        self.day = next_weekday(2)
        self.trips = RoundTrips(c)

    def search(self) -> Any:
        params = {"date": self.day.isoformat(), "visit_type_id": self.vt}
        return self.c.get(f"/v1/practices/{self.pid}/availability", params=params)

    def hold(self, pr: str, start: str, **headers: str) -> Any:
        body = {"practitioner_id": pr, "visit_type_id": self.vt, "start": start}
        return self.c.post("/v1/holds", json=body, headers=headers)

    def book(self, hold_id: str, **headers: str) -> Any:
        return self.c.post("/v1/appointments", json={"hold_id": hold_id, "patient": PATIENT}, headers=headers)

    def run(self, pr: str, n: int) -> dict[str, Trips]:
        """Every operation once on ``pr``'s slots; each one's round trips."""
        c, of, out = self.c, self.trips.of, {}
        free = [s["start"] for s in search(c, self.pid, self.vt, self.day) if s["practitioner_id"] == pr]
        found, out["search"] = of(self.search)
        assert (
            found.status_code == 200
            and [s["start"] for s in found.json()["slots"] if s["practitioner_id"] == pr] == free
        )
        h, out["hold"] = of(lambda: self.hold(pr, free[0]))
        assert h.status_code == 201, h.text
        a, out["book"] = of(lambda: self.book(h.json()["id"]))
        assert a.status_code == 201, a.text
        keyed = {"Idempotency-Key": f"hold-{n}-{uuid.uuid4().hex}"}
        h2, out["hold with key"] = of(lambda: self.hold(pr, free[4], **keyed))
        h2_again, out["hold replayed"] = of(lambda: self.hold(pr, free[4], **keyed))
        assert h2.status_code == h2_again.status_code == 201 and h2_again.json() == h2.json()
        assert h2_again.headers["idempotent-replayed"] == "true"
        keyed = {"Idempotency-Key": f"book-{n}-{uuid.uuid4().hex}"}
        a2, out["book with key"] = of(lambda: self.book(h2.json()["id"], **keyed))
        a2_again, out["book replayed"] = of(lambda: self.book(h2.json()["id"], **keyed))
        assert a2.status_code == a2_again.status_code == 201, a2_again.text
        assert a2_again.content == a2.content and a2_again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in a2.headers
        mine = {"X-Manage-Token": a.json()["manage_token"]}
        cancel = f"/v1/appointments/{a.json()['id']}/cancel"
        gone, out["cancel"] = of(lambda: c.post(cancel, json={"reason": "better"}, headers=mine))
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
        assert gone.json()["version"] == a.json()["version"] + 1
        again, out["cancel again"] = of(lambda: c.post(cancel, json={"reason": "other"}, headers=mine))
        read = c.get(f"/v1/appointments/{a.json()['id']}", headers=mine)
        assert again.json() == gone.json() == read.json()  # the answer built from the one read is the record
        target = self.hold(pr, free[8]).json()
        mine = {"X-Manage-Token": a2.json()["manage_token"]}
        move = f"/v1/appointments/{a2.json()['id']}/reschedule"
        moved, out["reschedule"] = of(lambda: c.post(move, json={"hold_id": target["id"]}, headers=mine))
        assert moved.status_code == 200, moved.text
        assert moved.json()["start"] == target["start"] and moved.json()["version"] == 2
        assert moved.json() == c.get(f"/v1/appointments/{a2.json()['id']}", headers=mine).json()
        return out


def test_each_operation_costs_its_round_trips(make_client: Callable[..., TestClient[Any]]) -> None:
    c, ctx = public_client(make_client)
    flow = Flow(c, ctx)
    first, second = ctx["practitioners"]
    flow.run(first, 1)  # warms the process: scripts loaded, the practice and the search context cached
    trips = flow.run(second, 2)
    counted = {name: t.request for name, t in trips.items()}
    assert counted == {
        "search": [READS],
        "hold": [LIMIT, HOLD],
        "book": [LIMIT, BOOK],
        "hold with key": [LIMIT, HOLD],
        "hold replayed": [LIMIT, HOLD, FORGET],
        "book with key": [LIMIT, BOOK],
        "book replayed": [LIMIT, BOOK],
        "cancel": ["HGETALL", CANCEL],
        "cancel again": ["HGETALL"],
        "reschedule": ["PIPELINE", RESCHEDULE, FORGET],
    }, counted
    assert trips["search"].audit == ["PIPELINE"]  # the cached answer's audit: the next batch of the process
    assert all(not t.audit for name, t in trips.items() if name != "search")


def test_booking_makes_room_in_the_cap_and_a_failed_booking_keeps_its_place(
    make_client: Callable[..., TestClient[Any]],
) -> None:
    """The booking's limit call takes the hold off the client's live holds; when the booking then fails, the
    hold, still live, counts again."""
    c, ctx = public_client(make_client, limit_live_holds=1)
    flow = Flow(c, ctx)
    pr = ctx["practitioners"][0]
    free = [s["start"] for s in search(c, flow.pid, flow.vt, flow.day) if s["practitioner_id"] == pr]
    first = flow.hold(pr, free[0])
    assert first.status_code == 201
    assert flow.hold(pr, free[2]).status_code == 429  # one live hold: the cap is full
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    assert flow.book(first.json()["id"], **key).status_code == 201
    second = flow.hold(pr, free[2])  # booking it made room
    assert second.status_code == 201, second.text
    refused = flow.book(second.json()["id"], **key)  # the key of another booking: nothing is booked
    assert refused.status_code == 422 and refused.json()["code"] == "idempotency_key_reused"
    over = flow.hold(pr, free[4])
    assert over.status_code == 429, over.text  # the second hold is still live, and still counts
    assert flow.book(second.json()["id"]).status_code == 201
    assert flow.hold(pr, free[4]).status_code == 201
