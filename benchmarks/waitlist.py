"""The waitlist in `booking bench` (issue 14): the churn-with-waitlist scenario, driven through the HTTP contract
only (API.md, Waitlist), and the invariant check of its offers (invariant 11), replayed from the practices'
event streams after the run."""

from __future__ import annotations

import datetime as dt
import random
from collections import deque
from typing import Any

from benchmarks.dataset import Dataset, PracticeData
from benchmarks.httpclient import build_request
from benchmarks.scenarios import Req, Scenario, _dec


def waitlist_practices(data: Dataset) -> list[PracticeData]:
    """The practices whose waitlists the waitlist scenario fills: all but the hotslot practice (up to 3)."""
    rest = [p for p in data.practices if not data.hot or p.id != data.hot.practice_id]
    return (rest or data.practices)[:3]


class WaitlistChurn(Scenario):
    """Cancellation churn while patients wait (API.md, Waitlist): entries join the waitlists of a few practices
    (any practitioner, the whole search window, any time of day); bookings land and the oldest are cancelled,
    each cancellation offering its interval to the earliest-joined matching entry; entries poll their state and
    accept (70 %) or decline (30 %) what they are offered; accepted appointments join the churn. At the end of a
    step the entries that still wait leave, so later steps start without them."""

    name = "waitlist"
    keep = 20  # live bookings per generator process before the oldest is cancelled
    waiting = 30  # entries per generator process

    def __init__(self, data: Dataset, token: str | None, rng: random.Random) -> None:
        super().__init__(data, token, rng)
        self.mine = waitlist_practices(data)
        self.entries: deque[str] = deque()  # entries joined and not yet booked or left, polled in turn
        self.joining = 0

    def join(self) -> Req:
        p = self.rng.choice(self.mine)
        n = self.rng.randrange(1_000_000)
        body = {
            "visit_type_id": self.rng.choice(p.visit_types)[0],
            "from_date": self.first.isoformat(),
            "to_date": (self.first + dt.timedelta(days=self.data.search_days - 1)).isoformat(),
            "patient": {"name": f"Waiting {n}", "email": f"w{n}@example.org"},
        }
        self.joining += 1
        return Req("join", build_request("POST", f"/v1/practices/{p.id}/waitlist", body, self.token))

    def entry_call(self, kind: str, entry_id: str) -> Req:
        method, path, body = {
            "poll": ("GET", f"/v1/waitlist/{entry_id}", None),
            "accept": ("POST", f"/v1/waitlist/{entry_id}/accept", b"{}"),
            "decline": ("POST", f"/v1/waitlist/{entry_id}/decline", b"{}"),
            "leave": ("DELETE", f"/v1/waitlist/{entry_id}", None),
        }[kind]
        return Req(kind, build_request(method, path, body, self.token), entry_id)

    def next(self) -> Req:
        if self.follow:
            return self.follow.popleft()
        if len(self.entries) + self.joining < self.waiting:
            return self.join()
        r = self.rng.random()
        if r < 0.4 and self.entries:
            entry_id = self.entries.popleft()
            self.entries.append(entry_id)
            return self.entry_call("poll", entry_id)
        if r < 0.55 or not self.slots:
            return self.search(self._search_days(), decode=True, practice=self.rng.choice(self.mine))
        if len(self.live) >= self.keep:
            return self.cancel(self.live.popleft())
        slot = self.take_slot()
        assert slot is not None
        return self.hold(*slot)

    def on_booked(self, appointment_id: str) -> None:
        self.live.append(appointment_id)

    def answer(self, req: Req, status: int, body: bytes) -> None:
        kind = req.kind
        if kind == "join":
            self.joining -= 1
            if status == 201 and not self.closing:
                self.entries.append(_dec.decode(body)["id"])
            elif status == 201:
                self.follow.append(self.entry_call("leave", _dec.decode(body)["id"]))
        elif kind == "poll" and status == 200:
            e = _dec.decode(body)
            if e["status"] in ("booked", "left", "ended") and e["id"] in self.entries:
                self.entries.remove(e["id"])
            elif e["status"] == "offered" and not self.closing:
                self.follow.append(self.entry_call("accept" if self.rng.random() < 0.7 else "decline", e["id"]))
        elif kind == "accept" and status == 201:
            a = _dec.decode(body)
            self.booked.append((a["id"], a.get("practitioner_id", ""), a.get("start", ""), a.get("end", "")))
            self.on_booked(a["id"])
            if req.ctx in self.entries:
                self.entries.remove(req.ctx)
        else:
            super().answer(req, status, body)

    def wind_down(self) -> None:
        """As every scenario, then the entries still on the waitlist leave (a live offer is released)."""
        super().wind_down()
        self.follow.extend(self.entry_call("leave", e) for e in self.entries)
        self.entries.clear()


# ------------------------------------------------------------------ the invariant check (invariant 11)
class OfferCheck:
    """Replays one practice's stream in order and checks every `waitlist_offer` against what came before it:
    the entry was waiting and held no other offer; the interval overlaps no live claim (a booking, a live hold,
    another offer: so no double booking and no interval offered twice at once) and was never offered to that
    entry before; no entry that joined earlier, was waiting then, matched the practitioner and visit type and
    fitted the interval went without (the entry that just gave an interval up is left out of the offers of that
    same step, as the scripts do)."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}  # entry id -> the entry record after its last event
        self.claims: dict[str, tuple[str, int, int, int | None]] = {}  # id -> (practitioner, start, end, expires)
        self.seen: set[tuple[str, str, int, int]] = set()
        self.excluded = ""
        self.offers = 0
        self.unverified = 0  # offers to entries whose join is no longer in the stream (trimmed)
        self.violations: list[str] = []

    def _claim(self, ident: str, pr: str, start: int, end: int, expires: int | None) -> None:
        self.claims[ident] = (pr, start, end, expires)

    def feed(self, e: Any) -> None:
        from engine import events as ev

        if isinstance(e, ev.WaitlistDeclined | ev.WaitlistLapsed | ev.WaitlistLeft):
            self.excluded = e.data.id
            self.claims.pop(e.hold_id, None)
        elif not isinstance(e, ev.WaitlistOffered | ev.HoldReleased | ev.HoldExpired):
            self.excluded = ""
        if isinstance(e, ev.Held):
            self._claim(e.hold_id, e.practitioner_id, e.detail.start, e.detail.end, e.detail.expires_ms)
        elif isinstance(e, ev.HoldReleased | ev.HoldExpired):
            self.claims.pop(e.hold_id, None)
        elif isinstance(e, ev.AppointmentBooked | ev.AppointmentRescheduled):
            self.claims.pop(e.hold_id, None)
            self._claim(e.appointment_id, e.practitioner_id, e.detail.start, e.detail.end, None)
        elif isinstance(e, ev.AppointmentCancelled):
            self.claims.pop(e.appointment_id, None)
        elif isinstance(e, ev.WaitlistOffered):
            self._offer(e)
        if isinstance(e, ev.WaitlistEvent):
            self.entries[e.data.id] = e.data

    def _offer(self, e: Any) -> None:
        self.offers += 1
        pr, s, t = e.practitioner_id, e.detail.start or 0, e.detail.end or 0
        entry_id = e.data.id
        bad = self.violations.append
        for cid, (cpr, cs, ce, exp) in self.claims.items():
            if cpr == pr and cs < t and s < ce and (exp is None or exp > e.at):
                bad(f"offer {e.hold_id} to {entry_id} [{s},{t}) overlaps the live claim {cid} [{cs},{ce})")
        if (entry_id, pr, s, t) in self.seen:
            bad(f"the interval {pr} [{s},{t}) offered twice to entry {entry_id}")
        self.seen.add((entry_id, pr, s, t))
        self._claim(e.hold_id, pr, s, t, e.detail.expires_ms)
        before = self.entries.get(entry_id)
        if before is None:
            self.unverified += 1
            return
        if before.status != "waiting" or before.offer is not None:
            bad(f"entry {entry_id} offered {pr} [{s},{t}) while {before.status} (an entry with two offers)")
        for other in self.entries.values():
            if other.order >= before.order or other.status != "waiting" or other.id == self.excluded:
                continue
            fits = any(a <= s and t <= b for a, b in other.spans)
            if (
                fits
                and other.visit_type_id == before.visit_type_id
                and other.practitioner_id in (None, pr)
                and f"{pr}|{s}|{t}" not in other.had
            ):
                bad(f"entry {other.id} joined before {entry_id}, waited and fitted {pr} [{s},{t})")


def check_offers(r: Any, practice_ids: list[str], page: int = 5000) -> tuple[int, int, list[str]]:
    """Every waitlist offer of these practices' streams checked (``OfferCheck``); returns (offers, unverified,
    violations)."""
    from engine import events as ev
    from engine import keys

    offers, unverified, violations = 0, 0, []
    for pid in practice_ids:
        check = OfferCheck()
        start = "-"
        while True:
            batch = r.xrange(keys.events(pid), start, "+", count=page)
            for entry_id, fields in batch:
                check.feed(ev.from_stream(entry_id, fields))
            if len(batch) < page:
                break
            last = batch[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        offers, unverified = offers + check.offers, unverified + check.unverified
        violations += check.violations
    return offers, unverified, violations
