"""The harness of tests/system/test_faults.py: threads that load a server as the patient apps would, and the checks
that every acknowledged booking reached PostgreSQL exactly once with an unbroken audit chain."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from tests.support.config import AUTH, WEEKDAYS
from tests.support.databases import q
from tests.support.http import setup_practice
from tests.support.servers import run_cli, wait_until


def lag_events(url: str) -> float | None:
    body = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(r"^booking_persister_lag_events (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def make_practice(url: str, practitioners: int = 3) -> dict[str, Any]:
    """Three practitioners, 30-minute visits, open 07:00-19:00 every day (thousands of slots)."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
        weekly = [{"day": d, "start": "07:00", "end": "19:00"} for d in WEEKDAYS]
        return setup_practice(c, durations=(30,), practitioners=practitioners, weekly=weekly)


def days_ahead(first: int = 2, count: int = 80) -> list[dt.date]:
    today = dt.date.today()
    return [today + dt.timedelta(days=first + i) for i in range(count)]


class Load:
    """Threads doing search -> hold -> book against a server, as the patient apps would. Every answer is
    counted by (phase, step, status, code); every 201 appointment is remembered with the phase it came in."""

    def __init__(self, url: str, ctx: dict[str, Any], threads: int = 4, pace: float = 0.01) -> None:
        self.url, self.ctx, self.pace = url, ctx, pace
        self.vt = ctx["visit_types"][30]
        self.days = days_ahead()
        self.phase, self.phase_seq = "start", 0
        self.thread_seq = [0] * threads
        self.answers: Counter[tuple[str, str, int, str]] = Counter()
        self.transport_errors: Counter[tuple[str, str, str]] = Counter()
        self.booked: dict[str, dict[str, Any]] = {}  # appointment id -> body, plus the phase
        self.failed_book_holds: set[str] = set()  # holds whose book call got no 201 (may or may not be booked)
        self.missing_retry_after = 0
        self.failures_at: list[tuple[float, str, str]] = []  # (time.monotonic(), step, what) of 5xx, transport errors
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        self.crashes: list[BaseException] = []

    # -------------------------------------------------------------- recording
    def _note(self, phase: str, step: str, r: httpx.Response) -> None:
        code = ""
        if r.status_code >= 400:
            try:
                code = str(r.json().get("code", ""))
            except ValueError:
                code = "<not json>"
        with self.lock:
            self.answers[(phase, step, r.status_code, code)] += 1
            if r.status_code == 503 and "retry-after" not in r.headers:
                self.missing_retry_after += 1
            if r.status_code >= 500:
                self.failures_at.append((time.monotonic(), step, f"{r.status_code} {code}: {r.text[-90:]}"))
        if r.status_code == 503:
            self.stop_ev.wait(0.05)  # back off a little, as Retry-After asks

    @property
    def n_booked(self) -> int:
        with self.lock:
            return len(self.booked)

    def unexpected(self, allowed: set[tuple[int, str]]) -> dict[tuple[str, str, int, str], int]:
        with self.lock:
            return {k: n for k, n in self.answers.items() if (k[2], k[3]) not in allowed}

    def count(self, status: int, code: str = "") -> int:
        with self.lock:
            return sum(n for k, n in self.answers.items() if k[2] == status and k[3] == code)

    # -------------------------------------------------------------- phases
    def set_phase(self, name: str) -> None:
        with self.lock:
            self.phase_seq += 1
            self.phase = name

    def settle(self, timeout: float = 30) -> None:
        """Wait until every thread has started a request in the current phase: nothing sent earlier is in
        flight any more."""
        with self.lock:
            seq = self.phase_seq
        wait_until(lambda: min(self.thread_seq) >= seq, timeout, "the load threads to finish their requests")

    def _begin(self, index: int) -> str:
        with self.lock:
            self.thread_seq[index] = self.phase_seq
            return self.phase

    # -------------------------------------------------------------- the loop
    def _run(self, index: int) -> None:
        rnd = random.Random(index)
        try:
            with httpx.Client(base_url=self.url, timeout=10) as c:
                while not self.stop_ev.is_set():
                    self._one(c, rnd, index)
                    self.stop_ev.wait(self.pace)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.crashes.append(exc)
        finally:
            with self.lock:
                self.thread_seq[index] = 1 << 30  # a stopped thread has nothing in flight

    def _one(self, c: httpx.Client, rnd: random.Random, index: int) -> None:
        step, hold_id = "search", None
        phase = self._begin(index)
        try:
            day = rnd.choice(self.days)
            r = c.get(
                f"/v1/practices/{self.ctx['practice_id']}/availability",
                params={"date": day.isoformat(), "visit_type_id": self.vt, "days": 1},
            )
            self._note(phase, step, r)
            if r.status_code != 200 or not r.json()["slots"]:
                return
            slot = rnd.choice(r.json()["slots"])
            step = "hold"
            phase = self._begin(index)
            r = c.post(
                "/v1/holds",
                json={"practitioner_id": slot["practitioner_id"], "visit_type_id": self.vt, "start": slot["start"]},
            )
            self._note(phase, step, r)
            if r.status_code != 201:
                return
            hold_id = r.json()["id"]
            step = "book"
            phase = self._begin(index)
            r = c.post(
                "/v1/appointments",
                json={"hold_id": hold_id, "patient": {"name": f"Patient {index}", "email": f"p{index}@example.org"}},
            )
            self._note(phase, step, r)
            if r.status_code == 201:
                body = r.json()
                with self.lock:
                    self.booked[body["id"]] = {**body, "phase": phase}
            else:
                with self.lock:
                    self.failed_book_holds.add(hold_id)
        except httpx.TransportError as exc:
            with self.lock:
                self.transport_errors[(phase, step, type(exc).__name__)] += 1
                self.failures_at.append((time.monotonic(), step, type(exc).__name__))
                if step == "book" and hold_id:
                    self.failed_book_holds.add(hold_id)
            self.stop_ev.wait(0.05)

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"
        assert not self.crashes, self.crashes

    def summary(self) -> str:
        with self.lock:
            by_phase: Counter[str] = Counter(b["phase"] for b in self.booked.values())
            return (
                f"{len(self.booked)} acknowledged bookings by phase {dict(by_phase)}; answers {dict(self.answers)};"
                f" transport errors {dict(self.transport_errors)}"
            )

    def wait_for_more(self, n: int, timeout: float = 60) -> None:
        target = self.n_booked + n
        wait_until(lambda: self.n_booked >= target, timeout, f"{n} more acknowledged bookings ({self.answers})")


@contextlib.contextmanager
def running(load: Load) -> Iterator[Load]:
    load.start()
    try:
        yield load
    finally:
        load.stop_ev.set()
        for t in load.threads:
            t.join(30)


def stored_ids(db: Engine) -> list[str]:
    return [row[0] for row in q(db, "select id from appointments")]


def assert_stored_exactly_once(db: Engine, booked: set[str], may_also_hold: set[str] | None = None) -> None:
    """Every acknowledged appointment is in `appointments` once, booked, with exactly one `book` audit row;
    anything else stored comes from a book call whose answer was lost (its hold is in ``may_also_hold``)."""
    rows = q(db, "select id, status, hold_id from appointments")
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids))
    missing = booked - set(ids)
    assert not missing, f"{len(missing)} acknowledged booking(s) missing from PostgreSQL: {sorted(missing)[:5]}"
    extra = {r[0]: r[2] for r in rows if r[0] not in booked}
    assert set(extra.values()) <= (may_also_hold or set()), f"appointments nobody booked: {extra}"
    assert all(r[1] == "booked" for r in rows if r[0] in booked)
    book_rows = Counter(r[0] for r in q(db, "select appointment_id from audit_events where action = 'book'"))
    assert {a for a, n in book_rows.items() if n != 1} == set(), "an appointment has more than one book row"
    assert set(book_rows) == set(ids), "book audit rows and appointments differ"
    # the audit chain has no hole and no repeat: seq 1..N in chain order, per practice
    for (pid,) in q(db, "select distinct practice_id from audit_events"):
        seqs = [r[0] for r in q(db, "select seq from audit_events where practice_id = :p order by chain_index", p=pid)]
        assert seqs == list(range(1, len(seqs) + 1))


def assert_audit_verifies(env: dict[str, str]) -> None:
    res = run_cli(env, "audit", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all chains intact" in res.stdout, res.stdout
