"""The practice-rules scenario of `booking bench` (`--preset practice-rules`; issue 23, item 6): practices whose
visit types have buffers and daily limits (and need one shared room, when the engine has resources), many users
searching, holding, booking, releasing and cancelling on a few days, and after the run an invariant check read from
Redis and PostgreSQL: no two occupations (buffers included) of one practitioner overlap, no two claims of one
resource overlap, no practitioner, visit type and local date holds more than ``max_per_day`` live claims."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from benchmarks.dataset import Dataset, PracticeData
from benchmarks.httpclient import Client
from benchmarks.scenarios import Req, Scenario

ZONE = "Europe/Paris"  # a zone with DST: the daily limits count by its local dates
DAYS = 2  # the scenario crowds its claims onto this many dates, so that limits and buffers are reached
# (name, minutes, before, after, max_per_day, needs the room)
VISIT_TYPES = (
    ("surgery", 30, 5, 10, 2, True),
    ("consult", 15, 0, 5, 3, False),
    ("scan", 20, 0, 0, None, True),
)
WEEKLY = [
    {"day": d, "start": s, "end": e}
    for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    for s, e in (("08:00", "12:00"), ("13:00", "17:00"))
]


# ------------------------------------------------------------------ seeding
async def _seed(base: str, token: str | None, practices: int, practitioners: int, horizon: int) -> tuple[Any, str]:
    c = Client(base, token, size=8)
    out: list[PracticeData] = []
    note = ""
    try:
        for i in range(practices):
            st, p = await c.call("POST", "/v1/practices", {"name": f"Rules {i}", "timezone": ZONE})
            assert st == 201, (st, p)
            pid = p["id"]
            prs = []
            for k in range(practitioners):
                st, pr = await c.call("POST", f"/v1/practices/{pid}/practitioners", {"name": f"Dr R{i}.{k}"})
                assert st == 201, (st, pr)
                prs.append(pr["id"])
            st, room = await c.call("POST", f"/v1/practices/{pid}/resources", {"name": "Room 1", "kind": "room"})
            if st != 201:
                room = None
                note = (
                    f"no shared room: POST /v1/practices/{{id}}/resources answered {st} (the engine has no resources)"
                )
            vts = []
            for name, minutes, before, after, most, needs_room in VISIT_TYPES:
                body: dict[str, Any] = {"name": name, "duration_minutes": minutes, "buffer_before_minutes": before,
                                        "buffer_after_minutes": after, "max_per_day": most}  # fmt: skip
                if room and needs_room:
                    body["resource_ids"] = [room["id"]]
                st, v = await c.call("POST", f"/v1/practices/{pid}/visit-types", body)
                assert st == 201, (st, v)
                vts.append((v["id"], minutes))
            schedule = {"weekly": WEEKLY, "slot_step_minutes": 5, "horizon_days": horizon, "min_notice_minutes": 0}
            for pr_id in prs:
                st, s = await c.call("PUT", f"/v1/practitioners/{pr_id}/schedule", schedule)
                assert st == 200, (st, s)
            out.append(PracticeData(id=pid, timezone=ZONE, practitioners=prs, visit_types=vts))
    finally:
        c.close()
    return out, note or "one shared room per practice (resource_ids on surgery and scan)"


def seed(base: str, token: str | None, practices: int, practitioners: int, horizon: int) -> tuple[Any, str]:
    """The rules practices (``practices`` of ``practitioners``), and a note on the shared room."""
    return asyncio.run(_seed(base, token, practices, practitioners, horizon))


# ------------------------------------------------------------------ the scenario
class PracticeRules(Scenario):
    """Searches (half of the requests, 1 to 3 days, decoded), holds of slots seen, bookings (70 %) or releases
    (30 %) of the holds won, and cancellations of the oldest bookings beyond ``keep``, all on the rules practices'
    first ``DAYS`` dates: claims of several visit types race for buffers, daily limits and the room."""

    name = "rules"
    keep = 40

    def __init__(self, data: Dataset, token: str | None, rng: random.Random) -> None:
        super().__init__(data, token, rng)
        assert data.rules, "the rules scenario needs the rules practices (benchmarks/rules.py seed)"

    def _practice(self) -> PracticeData:
        return self.rng.choice(self.data.rules)

    def _offset(self, span: int) -> int:
        return self.rng.randrange(min(span, DAYS))

    def next(self) -> Req:
        if self.follow:
            return self.follow.popleft()
        if self.rng.random() < 0.5 or not self.slots:
            return self.search(self.rng.randint(1, 3), decode=True)
        if len(self.live) >= self.keep:
            return self.cancel(self.live.popleft())
        slot = self.take_slot()
        assert slot is not None
        return self.hold(*slot)

    def on_hold(self, hold_id: str) -> None:
        self.follow.append(self.book(hold_id) if self.rng.random() < 0.7 else self.release(hold_id))

    def on_booked(self, appointment_id: str) -> None:
        self.live.append(appointment_id)


# ------------------------------------------------------------------ the invariant check
class Rule(msgspec.Struct, frozen=True):
    before_s: int = 0
    after_s: int = 0
    most: int | None = None
    resources: tuple[str, ...] = ()


class Claim(msgspec.Struct, frozen=True):
    """One live claim: its visit and its occupation ([occ_start, occ_end): the visit with its buffers)."""

    ident: str
    practitioner_id: str
    visit_type_id: str
    start: int
    end: int
    occ_start: int
    occ_end: int


def _overlaps(items: list[tuple[int, int, str]], what: str) -> list[str]:
    """Each pair of intervals that overlap (sorted by start: a claim overlapping any earlier one overlaps the one
    that ends last so far)."""
    out = []
    items = sorted(items)
    last: tuple[int, int, str] | None = None
    for s, e, ident in items:
        if last is not None and s < last[1]:
            out.append(f"{what}: {last[2]} [{last[0]},{last[1]}) overlaps {ident} [{s},{e})")
        if last is None or e > last[1]:
            last = (s, e, ident)
    return out


def per_day(claims: list[Claim], tz: ZoneInfo) -> dict[tuple[str, str, dt.date], int]:
    """Claims per practitioner, visit type and local date of their start."""
    out: dict[tuple[str, str, dt.date], int] = {}
    for c in claims:
        key = (c.practitioner_id, c.visit_type_id, dt.datetime.fromtimestamp(c.start, tz).date())
        out[key] = out.get(key, 0) + 1
    return out


def at_limit(claims: list[Claim], rules: dict[str, Rule], tz: ZoneInfo) -> int:
    """How many practitioner-visit type-local dates reached their ``max_per_day`` (the run pressed on the limits)."""
    return sum(1 for (_, vt, _), n in per_day(claims, tz).items() if n >= (rules.get(vt, Rule()).most or n + 1))


def violations(claims: list[Claim], rules: dict[str, Rule], tz: ZoneInfo) -> list[str]:
    """What the claims of one practice break: occupations of one practitioner that overlap, claims of one resource
    that overlap (the visit itself: API.md), practitioner-visit type-local dates over ``max_per_day``."""
    bad: list[str] = []
    by_pr: dict[str, list[tuple[int, int, str]]] = {}
    by_res: dict[str, list[tuple[int, int, str]]] = {}
    for c in claims:
        by_pr.setdefault(c.practitioner_id, []).append((c.occ_start, c.occ_end, c.ident))
        rule = rules.get(c.visit_type_id, Rule())
        for res in rule.resources:
            by_res.setdefault(res, []).append((c.start, c.end, c.ident))
    for pr, items in sorted(by_pr.items()):
        bad += _overlaps(items, f"practitioner {pr}")
    for res, items in sorted(by_res.items()):
        bad += _overlaps(items, f"resource {res}")
    for (pr, vt, day), n in sorted(per_day(claims, tz).items()):
        most = rules.get(vt, Rule()).most
        if most is not None and n > most:
            bad.append(f"practitioner {pr}, visit type {vt}, {day}: {n} claims, max_per_day {most}")
    return bad


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def read_rules(r: Any, pid: str) -> dict[str, Rule]:
    from engine import keys

    out = {}
    for vid, raw in r.hgetall(keys.visit_types(pid)).items():
        v = msgspec.json.decode(raw)
        out[_text(vid)] = Rule(
            before_s=(v.get("buffer_before_minutes") or 0) * 60,
            after_s=(v.get("buffer_after_minutes") or 0) * 60,
            most=v.get("max_per_day"),
            resources=tuple(v.get("resource_ids") or ()),
        )
    return out


class RoomClaim(msgspec.Struct, frozen=True):
    """One live member of the practice's resource claims zset (T:rclaims): the visit of a hold or booking on a
    resource."""

    resource_id: str
    ident: str
    start: int
    end: int


def _snapshot(r: Any, pid: str, now_ms: int) -> tuple[list[tuple[str, str, int, int]], list[RoomClaim]]:
    """The live members of the practice's claims zsets ((kind, id, occ_start, occ_end)) and of its resource claims
    zset, read in one MULTI (one hash tag: one slot), so that the two agree with one another."""
    from engine import keys

    prs = [_text(pr) for pr in r.hkeys(keys.practitioners(pid))]
    pipe = r.pipeline(transaction=True)
    for pr in prs:
        pipe.zrange(keys.claims(pid, pr), 0, -1, withscores=True)
    pipe.zrange(keys.resource_claims(pid), 0, -1, withscores=True)
    *per_pr, rc = pipe.execute()
    found: list[tuple[str, str, int, int]] = []
    for members in per_pr:
        for m, score in members:
            kind, ident, end, exp = _text(m).split("|")
            if kind == "b" or int(exp) > now_ms:
                found.append((kind, ident, int(score), int(end)))
    rooms = []
    for m, score in rc:
        rid, kind, ident, end, exp = _text(m).split("|")
        if kind == "b" or int(exp) > now_ms:
            rooms.append(RoomClaim(rid, ident, int(score), int(end)))
    return found, rooms


def room_violations(claims: list[Claim], rooms: list[RoomClaim], rules: dict[str, Rule]) -> list[str]:
    """What the resource claims zset breaks: two live claims of one resource that overlap, a live claim whose
    visit type needs a resource with no claim of it (or one over another interval), a resource claim no live
    claim of the practice owns."""
    bad: list[str] = []
    by_res: dict[str, list[tuple[int, int, str]]] = {}
    owned = {(x.resource_id, x.ident): (x.start, x.end) for x in rooms}
    for x in rooms:
        by_res.setdefault(x.resource_id, []).append((x.start, x.end, x.ident))
    for res, items in sorted(by_res.items()):
        bad += _overlaps(items, f"room claims of resource {res}")
    idents = {c.ident for c in claims}
    for c in claims:
        for res in rules.get(c.visit_type_id, Rule()).resources:
            if owned.get((res, c.ident)) != (c.start, c.end):
                bad.append(f"claim {c.ident} [{c.start},{c.end}) needs resource {res}: its room claim is"
                           f" {owned.get((res, c.ident))}")  # fmt: skip
    bad += [f"resource {x.resource_id}: claim of {x.ident} owned by no live claim" for x in rooms
            if x.ident not in idents]  # fmt: skip
    return bad


def redis_claims(r: Any, pid: str, now_ms: int, found: list[tuple[str, str, int, int]] | None = None) -> list[Claim]:
    """The live claims of the practice's claims zsets (bookings, live holds and offers), their visits read from
    their hold or appointment hashes, their occupations from the zset (score and member end)."""
    from engine import keys

    if found is None:
        found = _snapshot(r, pid, now_ms)[0]
    pipe = r.pipeline(transaction=False)
    for kind, ident, _, _ in found:
        key = keys.appointment(pid, ident) if kind == "b" else keys.hold(pid, ident)
        pipe.hmget(key, "practitioner_id", "visit_type_id", "start", "end")
    out = []
    for (_, ident, occ_s, occ_e), (pr, vt, s, e) in zip(found, pipe.execute(), strict=True):
        out.append(Claim(ident, _text(pr), _text(vt), int(s), int(e), occ_s, occ_e))
    return out


def db_claims(db_url: str, pid: str, rules: dict[str, Rule]) -> list[Claim]:
    """The practice's booked appointments in PostgreSQL, occupying their visit type's buffers (unchanged during a
    run)."""
    from sqlalchemy import create_engine, text

    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            rows = c.execute(
                text("SELECT id, practitioner_id, visit_type_id, start_at, end_at FROM appointments"
                     " WHERE practice_id = :pid AND status = 'booked'"), {"pid": pid}
            ).all()  # fmt: skip
    finally:
        eng.dispose()
    out = []
    for ident, pr, vt, start_at, end_at in rows:
        s, e = int(start_at.timestamp()), int(end_at.timestamp())
        rule = rules.get(vt, Rule())
        out.append(Claim(ident, pr, vt, s, e, s - rule.before_s, e + rule.after_s))
    return out


class RulesVerdict(msgspec.Struct):
    redis_claims: int = 0
    db_claims: int = 0
    at_limit: int = 0  # practitioner-visit type-local dates at max_per_day in Redis after the run
    room_claims: int = 0  # live members of the resource claims zsets (T:rclaims) checked
    violations: list[str] = []
    note: str = ""


def check(r: Any, db_url: str, practices: list[PracticeData], now_ms: int, note: str = "") -> RulesVerdict:
    """The rules invariant over Redis (live claims) and PostgreSQL (booked appointments), each on its own."""
    v = RulesVerdict(note=note)
    for p in practices:
        rules, tz = read_rules(r, p.id), ZoneInfo(p.timezone)
        found, rooms = _snapshot(r, p.id, now_ms)
        live = redis_claims(r, p.id, now_ms, found)
        v.room_claims += len(rooms)
        v.violations += [f"redis {x}" for x in room_violations(live, rooms, rules)]
        stored = db_claims(db_url, p.id, rules)
        v.redis_claims += len(live)
        v.db_claims += len(stored)
        v.at_limit += at_limit(live, rules, tz)
        v.violations += [f"redis {x}" for x in violations(live, rules, tz)]
        v.violations += [f"db {x}" for x in violations(stored, rules, tz)]
    return v


def summary(v: RulesVerdict) -> str:
    """One line for the log and the report's table."""
    state = "OK" if not v.violations else f"VIOLATED ({len(v.violations)})"
    return (f"practice rules {state} ({v.redis_claims} live claims in Redis, {v.room_claims} room claims,"
            f" {v.db_claims} bookings in PostgreSQL: occupations, resource claims, daily limits; {v.at_limit} dates"
            f" at their limit; {v.note})")  # fmt: skip
