"""After every run: no two booked appointments overlap, and every 201 is stored (PostgreSQL and Redis); after the
waitlist scenario also every offer of invariant 11 (benchmarks/waitlist.py); after the rules scenario also the
practice rules (buffers, shared rooms, daily limits: benchmarks/rules.py).

Engine: the write-behind persister is drained first (`Persister(redis_sync, db).drain()`), then
- Redis: each practitioner's claims zset, live members only, sorted by start: each ends before the next starts;
- PostgreSQL: no pair of booked appointments of one practitioner overlaps (a self-join);
- every appointment a 201 acknowledged exists in both, and every one a 200 cancelled is cancelled in both.
Comparator: the same two checks on its own tables.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from sqlalchemy import create_engine, text

from engine import keys

OVERLAPS_SQL = """
SELECT count(*) FROM {table} a JOIN {table} b
  ON a.practitioner_id = b.practitioner_id AND a.id < b.id
 AND a.start_at < b.end_at AND b.start_at < a.end_at
WHERE a.status = 'booked' AND b.status = 'booked'
"""


class Verdict(msgspec.Struct):
    target: str
    checked_bookings: int = 0
    redis_overlaps: int = 0
    db_overlaps: int = 0
    missing_in_db: int = 0
    missing_in_redis: int = 0
    cancel_not_stored: int = 0
    drained_events: int = 0
    backlog_left: int = 0  # events the persisters had not stored when the check gave up waiting
    drain_seconds: float = 0.0
    examples: list[str] = []
    skipped: str = ""
    waitlist_offers: int = 0  # offers checked (waitlist scenario)
    waitlist_unverified: int = 0  # offers to entries whose join was no longer in the stream
    waitlist_violations: int = 0  # offers breaking invariant 11 (examples listed)
    rules_claims: int = 0  # practice-rules scenario: live claims (Redis) and bookings (PostgreSQL) checked
    rules_violations: int = 0  # overlapping occupations or resource claims, daily limits exceeded (benchmarks/rules.py)
    rules_note: str = ""  # whether the practices shared a room
    rules_room_claims: int = 0  # live room claims (T:rclaims) checked against the claims that need the room

    @property
    def ok(self) -> bool:
        return not (
            self.redis_overlaps
            or self.db_overlaps
            or self.missing_in_db
            or self.missing_in_redis
            or self.cancel_not_stored
            or self.waitlist_violations
            or self.rules_violations
        )


def _chunks(items: list[str], n: int = 5000) -> Any:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _db_status(db_url: str, table: str, ids: list[str]) -> tuple[dict[str, str], int]:
    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            found: dict[str, str] = {}
            for chunk in _chunks(ids):
                for aid, status in c.execute(
                    text(f"SELECT id, status FROM {table} WHERE id = ANY(:ids)"), {"ids": chunk}
                ):
                    found[aid] = status
            overlaps = int(c.execute(text(OVERLAPS_SQL.format(table=table))).scalar() or 0)
        return found, overlaps
    finally:
        eng.dispose()


def redis_overlaps(r: Any, practice_ids: list[str]) -> tuple[int, list[str]]:
    """Live claims that overlap, over every practitioner of the given practices."""
    now_ms = int(time.time() * 1000)
    bad, examples = 0, []
    pipe = r.pipeline(transaction=False)
    for pid in practice_ids:
        pipe.hkeys(keys.practitioners(pid))
    practitioner_lists = pipe.execute()
    pairs = [(pid, pr.decode()) for pid, prs in zip(practice_ids, practitioner_lists) for pr in prs]
    for i in range(0, len(pairs), 500):
        pipe = r.pipeline(transaction=False)
        for pid, pr in pairs[i : i + 500]:
            pipe.zrange(keys.claims(pid, pr), 0, -1, withscores=True)
        for (_, pr), members in zip(pairs[i : i + 500], pipe.execute()):
            live = []
            for m, score in members:
                kind, ident, end, exp = m.decode().split("|")
                if kind == "b" or int(exp) > now_ms:
                    live.append((int(score), int(end), ident))
            live.sort()
            for a, b in zip(live, live[1:]):
                if a[1] > b[0]:
                    bad += 1
                    if len(examples) < 5:
                        examples.append(f"redis {pr}: {a[2]} [{a[0]},{a[1]}) overlaps {b[2]} [{b[0]},{b[1]})")
    return bad, examples


def catch_up(r: Any, db: Any, log: Any, timeout: float = 600.0) -> tuple[int, int]:
    """Drain in-process, then wait until the `persisters` group has nothing pending and nothing unread.

    A drain alone is no barrier while the `booking persister` process runs: entries it has read but not
    yet committed sit in its own pending list, out of the drain's sight."""
    from persistence.persister import Persister
    from persistence.streams import lag

    drained = Persister(r, db, batch=2000).drain()
    deadline = time.time() + timeout
    last_log = time.time()
    while True:
        behind, age = lag(r)
        if behind == 0:
            return drained, 0
        if time.time() > deadline:
            drained += Persister(r, db, batch=2000).drain()
            return drained, lag(r)[0]
        if time.time() - last_log > 10:
            log(f"    waiting for the write-behind: {behind} events behind, oldest {age:.0f}s")
            last_log = time.time()
        time.sleep(0.25)


def check_engine(
    r: Any, db_url: str, practice_ids: list[str], booked: list[str], cancelled: list[str], log: Any = print
) -> Verdict:
    """``r``: a client of the engine's Redis (closed here)."""
    from persistence.db import make_engine

    v = Verdict(target="engine", checked_bookings=len(booked))
    db = make_engine(db_url)
    try:
        t0 = time.time()
        v.drained_events, v.backlog_left = catch_up(r, db, log)
        v.drain_seconds = round(time.time() - t0, 1)
        log(
            f"    write-behind caught up in {v.drain_seconds}s ({v.drained_events} events drained here,"
            f" {v.backlog_left} left)"
        )
        v.redis_overlaps, v.examples = redis_overlaps(r, practice_ids)
        found, v.db_overlaps = _db_status(db_url, "appointments", booked)
        v.missing_in_db = sum(1 for a in booked if a not in found)
        missing_redis = 0
        for chunk in _chunks(booked, 2000):
            pipe = r.pipeline(transaction=False)
            for aid in chunk:
                pipe.hget(keys.appointment(aid.split(".", 1)[0], aid), "status")
            statuses = pipe.execute()
            missing_redis += sum(1 for s in statuses if s is None)
        v.missing_in_redis = missing_redis
        v.cancel_not_stored = sum(1 for a in cancelled if found.get(a) != "cancelled")
        v.examples += [f"201 not in PostgreSQL: {a}" for a in booked if a not in found][:5]
    finally:
        r.close()
        db.dispose()
    return v


def check_pgonly(db_url: str, booked: list[str], cancelled: list[str]) -> Verdict:
    v = Verdict(target="pgonly", checked_bookings=len(booked))
    found, v.db_overlaps = _db_status(db_url, "appointments", booked)
    eng = create_engine(db_url)
    with eng.connect() as c:
        v.redis_overlaps = int(
            c.execute(
                text(
                    "SELECT count(*) FROM claims a JOIN claims b ON a.practitioner_id = b.practitioner_id AND a.id < b.id"
                    " AND a.during && b.during WHERE a.active AND b.active AND a.state = 'booked' AND b.state = 'booked'"
                )
            ).scalar()
            or 0
        )  # no Redis here: the claims table stands in for the live calendar
    eng.dispose()
    v.missing_in_db = sum(1 for a in booked if a not in found)
    v.cancel_not_stored = sum(1 for a in cancelled if found.get(a) != "cancelled")
    return v
