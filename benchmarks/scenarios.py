"""Scenarios: what each scheduled request is, and what follows from each answer.

The generator asks `next()` for one request per tick of the fixed schedule (open loop). Multi-step flows
(search -> hold -> book -> cancel) are queues of follow-up actions: the next tick takes a queued follow-up
before it starts anything new, so every request, first step or not, starts on the schedule and its latency
is measured from its scheduled time.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import deque
from typing import Any

import msgspec

from benchmarks.dataset import Dataset, PracticeData
from benchmarks.httpclient import build_request

NAMES = ("search", "funnel", "hotslot", "churn", "waitlist", "popular", "outage", "rules")
DEFAULT = NAMES[:6]  # the default run's rate sweeps
# rate sweeps; "outage" is a search sweep through a Redis outage (benchmarks/outage.py); "rules" (buffers, daily
# limits, a shared room: benchmarks/rules.py) runs with --preset practice-rules or --scenarios rules
SWEPT = (*DEFAULT, "rules")
# Scenarios only the engine serves (the floor and the comparator have no waitlist, buffers, limits or rooms).
ENGINE_ONLY = frozenset(("waitlist", "rules"))
# Refusals a scenario provokes on purpose (races for the same slot, holds that expired); not errors.
EXPECTED = {
    ("hold", 409, "slot_unavailable"),
    ("book", 410, "hold_expired"),
    ("book", 409, "hold_used"),
    ("release", 409, "hold_used"),
    ("book", 409, "overlap_detected"),
    ("accept", 409, "no_offer"),  # the offer went away between the poll and the answer (lapse, sweeper)
    ("accept", 410, "offer_expired"),
    ("decline", 409, "no_offer"),
    ("decline", 410, "offer_expired"),
}
_dec = msgspec.json.Decoder()


class Req:
    __slots__ = ("ctx", "kind", "raw")

    def __init__(self, kind: str, raw: bytes, ctx: Any = None) -> None:
        self.kind, self.raw, self.ctx = kind, raw, ctx


class Scenario:
    """Base: request builders, the pools of slots seen, holds won and appointments booked."""

    name = ""

    def __init__(self, data: Dataset, token: str | None, rng: random.Random) -> None:
        self.data, self.token, self.rng = data, token, rng
        self.first = dt.date.fromisoformat(data.first_date)
        self.follow: deque[Req] = deque()  # follow-up steps of flows already started
        self.slots: deque[tuple[str, str, str]] = deque(maxlen=2000)  # (practitioner, visit type, start)
        self.booked: list[tuple[str, str, str, str]] = []  # (appointment id, practitioner, start, end)
        self.cancelled: list[str] = []
        self.live: deque[str] = deque()  # booked and not cancelled (churn)
        self.closing = False  # after the schedule: holds won are released, not booked (wind_down)

    # ------------------------------------------------------------ builders
    def _practice(self) -> PracticeData:
        return self.rng.choice(self.data.practices)

    def search(self, days: int, decode: bool = False, practice: PracticeData | None = None) -> Req:
        p = practice or self._practice()
        vt = self.rng.choice(p.visit_types)[0]
        day = self.first + dt.timedelta(days=self._offset(max(1, self.data.search_days - days)))
        path = f"/v1/practices/{p.id}/availability?date={day.isoformat()}&visit_type_id={vt}&days={days}"
        return Req("search", build_request("GET", path, None, self.token), (vt, decode))

    def _offset(self, span: int) -> int:
        """The first asked date, as days after the data's first date (below ``span``)."""
        return self.rng.randrange(span)

    def hold(self, practitioner: str, vt: str, start: str) -> Req:
        body = {"practitioner_id": practitioner, "visit_type_id": vt, "start": start}
        return Req("hold", build_request("POST", "/v1/holds", body, self.token))

    def book(self, hold_id: str) -> Req:
        n = self.rng.randrange(1_000_000)
        body = {"hold_id": hold_id, "patient": {"name": f"Patient {n}", "email": f"p{n}@example.org"}}
        return Req("book", build_request("POST", "/v1/appointments", body, self.token), hold_id)

    def release(self, hold_id: str) -> Req:
        return Req("release", build_request("DELETE", f"/v1/holds/{hold_id}", None, self.token))

    def cancel(self, appointment_id: str) -> Req:
        return Req("cancel", build_request("POST", f"/v1/appointments/{appointment_id}/cancel", b"{}", self.token))

    def _search_days(self) -> int:
        r = self.rng.random()
        return 1 if r < 0.4 else (self.rng.randint(2, 3) if r < 0.7 else 7)

    # ------------------------------------------------------------ answers
    def answer(self, req: Req, status: int, body: bytes) -> None:
        """Update the pools from one answer (only 2xx answers are read)."""
        kind = req.kind
        if kind == "search" and status == 200 and req.ctx[1]:
            out = _dec.decode(body)
            vt = req.ctx[0]
            hot = self.data.hot.practitioner_id if self.data.hot else None
            for s in out.get("slots", ())[:50]:
                # the hotslot practitioner is left to hotslot: another scenario's booking on a hot start would
                # block the fight for good (seen with the tiny --quick data, where it is one of few practices)
                if s["practitioner_id"] != hot:
                    self.slots.append((s["practitioner_id"], vt, s["start"]))
            self.on_slots()
        elif kind == "hold" and status == 201:
            hold_id = _dec.decode(body)["id"]
            if self.closing:
                self.follow.append(self.release(hold_id))
            else:
                self.on_hold(hold_id)
        elif kind == "book" and status == 201:
            a = _dec.decode(body)
            self.booked.append((a["id"], a.get("practitioner_id", ""), a.get("start", ""), a.get("end", "")))
            self.on_booked(a["id"])
        elif kind == "cancel" and status == 200:
            self.cancelled.append(_dec.decode(body)["id"])

    def wind_down(self) -> None:
        """After a step's schedule: the holds its flows still own are released instead of booked, so they do
        not stay live for HOLD_TTL_SECONDS and block the next step (in hotslot, a few such holds blocked every
        hot start and later steps measured nothing but 409s). Queued cancels and releases are kept."""
        self.closing = True
        kept: deque[Req] = deque()
        for req in self.follow:
            if req.kind == "book":
                kept.append(self.release(req.ctx))
            elif req.kind in ("release", "cancel"):
                kept.append(req)
        self.follow = kept

    def take_slot(self) -> tuple[str, str, str] | None:
        if not self.slots:
            return None
        i = self.rng.randrange(len(self.slots))
        slot = self.slots[i]
        del self.slots[i]
        return slot

    def on_slots(self) -> None:
        pass

    def on_hold(self, hold_id: str) -> None:
        self.follow.append(self.book(hold_id))

    def on_booked(self, appointment_id: str) -> None:
        pass

    def next(self) -> Req:
        raise NotImplementedError


class SearchMix(Scenario):
    """A consumer app: about 90 % searches over 1 to 7 days, 7 % holds of slots seen, 3 % bookings."""

    name = "search"

    def next(self) -> Req:
        r = self.rng.random()
        if r < 0.03 and self.follow:
            return self.follow.popleft()
        if r < 0.10:
            slot = self.take_slot()
            if slot is not None:
                return self.hold(*slot)
        return self.search(self._search_days(), decode=len(self.slots) < 200 and self.rng.random() < 0.2)

    def on_hold(self, hold_id: str) -> None:
        if len(self.follow) < 500:
            self.follow.append(self.book(hold_id))


class Popular(SearchMix):
    """The search mix as a consumer app sees it: popularity is skewed (practice of rank k is asked in proportion
    to 1/k: with 200 practices, the first 20 get about half of the searches) and patients look at the next days
    (the first week of the data's dates four times in five). The same holds and bookings as ``search``."""

    name = "popular"

    def __init__(self, data: Dataset, token: str | None, rng: random.Random) -> None:
        super().__init__(data, token, rng)
        ranks = list(data.practices)
        rng.shuffle(ranks)  # which practices are popular: fixed by the seed
        self._ranked = ranks
        self._weights = [1.0 / (k + 1) for k in range(len(ranks))]

    def _practice(self) -> PracticeData:
        return self.rng.choices(self._ranked, weights=self._weights)[0]

    def _offset(self, span: int) -> int:
        return self.rng.randrange(min(span, 7) if self.rng.random() < 0.8 else span)


class Funnel(Scenario):
    """Sessions: search 1 to 3 days -> hold one slot found -> book (80 %) or release (20 %); 10 % of the
    bookings are cancelled later."""

    name = "funnel"

    def next(self) -> Req:
        if self.follow:
            return self.follow.popleft()
        return self.search(self.rng.randint(1, 3), decode=True)

    def on_slots(self) -> None:
        slot = self.take_slot()
        self.slots.clear()
        if slot is not None:
            self.follow.append(self.hold(*slot))

    def on_hold(self, hold_id: str) -> None:
        self.follow.append(self.book(hold_id) if self.rng.random() < 0.8 else self.release(hold_id))

    def on_booked(self, appointment_id: str) -> None:
        if self.rng.random() < 0.1:
            self.follow.append(self.cancel(appointment_id))


class HotSlot(Scenario):
    """Thousands of clients race for a handful of slots (two visit lengths, so claims overlap partially):
    a winner books (80 %) or releases (20 %), and every booking is cancelled again so the fight goes on."""

    name = "hotslot"

    def next(self) -> Req:
        if self.follow:
            return self.follow.popleft()
        hot = self.data.hot
        assert hot is not None
        return self.hold(hot.practitioner_id, self.rng.choice(hot.visit_types), self.rng.choice(hot.starts))

    def on_hold(self, hold_id: str) -> None:
        self.follow.append(self.book(hold_id) if self.rng.random() < 0.8 else self.release(hold_id))

    def on_booked(self, appointment_id: str) -> None:
        self.follow.append(self.cancel(appointment_id))


class Churn(Scenario):
    """Bookings and cancellations at a steady rate (about 200 live bookings per generator process, the
    oldest cancelled as new ones land) while 60 % of the requests search."""

    name = "churn"
    keep = 200

    def next(self) -> Req:
        if self.rng.random() < 0.6:
            return self.search(self._search_days(), decode=len(self.slots) < 100)
        if self.follow:
            return self.follow.popleft()
        if len(self.live) >= self.keep:
            return self.cancel(self.live.popleft())
        slot = self.take_slot()
        if slot is None:
            return self.search(self._search_days(), decode=True)
        return self.hold(*slot)

    def on_booked(self, appointment_id: str) -> None:
        self.live.append(appointment_id)


def scenario_classes() -> dict[str, type[Scenario]]:
    from benchmarks.rules import PracticeRules  # they build on Scenario
    from benchmarks.waitlist import WaitlistChurn

    return {c.name: c for c in (SearchMix, Funnel, HotSlot, Churn, WaitlistChurn, Popular, PracticeRules)}


def make(name: str, data: Dataset, token: str | None, seed: int) -> Scenario:
    return scenario_classes()[name](data, token, random.Random(seed))
