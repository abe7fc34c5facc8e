"""Waitlist entries and events made by hand, as the waitlist scripts write them (docs/waitlist.md): for tests
of what consumes them (persister, reconciliation, notifier, metrics) without going through the scripts."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from engine import events as ev
from engine import ids, keys
from engine.model import Patient, WaitlistOffer, WaitlistRecord

PATIENT = Patient(name="Ada L", email="ada@example.org", phone=None)
TYPES = {
    "waitlist_join": ev.WaitlistJoined,
    "waitlist_offer": ev.WaitlistOffered,
    "waitlist_accept": ev.WaitlistAccepted,
    "waitlist_decline": ev.WaitlistDeclined,
    "waitlist_lapse": ev.WaitlistLapsed,
    "waitlist_leave": ev.WaitlistLeft,
}


def entry(
    practice_id: str, visit_type_id: str, order: int, spans: list[list[int]], now_ms: int, **kw: Any
) -> WaitlistRecord:
    """A new ``waiting`` entry at version 1 (fields overridable)."""
    base: dict[str, Any] = {
        "id": ids.new_waitlist_entry_id(practice_id),
        "practice_id": practice_id,
        "visit_type_id": visit_type_id,
        "from_date": "2027-01-04",
        "to_date": "2027-01-29",
        "spans": spans,
        "order": order,
        "status": "waiting",
        "version": 1,
        "joined_ms": now_ms,
        "updated_ms": now_ms,
        "manage_hash": ids.token_hash(secrets.token_urlsafe(8)),
        "patient": PATIENT,
    }
    base.update(kw)
    return WaitlistRecord(**base)


def offered(
    r: WaitlistRecord, hold_id: str, practitioner_id: str, start: int, end: int, expires_ms: int, at: int
) -> WaitlistRecord:
    return msgspec.structs.replace(
        r,
        status="offered",
        version=r.version + 1,
        updated_ms=at,
        offer=WaitlistOffer(
            hold_id=hold_id, practitioner_id=practitioner_id, start=start, end=end, expires_ms=expires_ms
        ),
        had=[*r.had, f"{practitioner_id}|{start}|{end}"],
    )


def changed(r: WaitlistRecord, at: int, **kw: Any) -> WaitlistRecord:
    """The entry after a change that bumps its version (decline, lapse, leave, accept)."""
    return msgspec.structs.replace(r, version=r.version + 1, updated_ms=at, **kw)


def event(kind: str, r: WaitlistRecord, at: int, hold_id: str | None = None, **detail: Any) -> ev.Event:
    """The event ``kind`` carrying the entry ``r`` after its change; ``hold_id`` (default: the entry's live
    offer) and the detail's ``start``/``end`` name the offer it is about."""
    o = r.offer
    if o is not None:
        detail.setdefault("start", o.start)
        detail.setdefault("end", o.end)
    event_type: Any = TYPES[kind]
    return event_type(  # type: ignore[no-any-return]
        seq=0,
        at=at,
        actor="public:127.0.0.1",
        practice_id=r.practice_id,
        practitioner_id=o.practitioner_id if o else (r.practitioner_id or ""),
        hold_id=(o.hold_id if o else "") if hold_id is None else hold_id,
        appointment_id=r.appointment_id or "",
        detail=ev.WaitlistDetail(entry_id=r.id, visit_type_id=r.visit_type_id, **detail),
        data=r,
    )


def append(redis: Any, e: ev.Event) -> str:
    """XADD the event to its practice's stream with the next audit ``seq``, as a script would; returns the
    stream entry id."""
    pid = e.practice_id
    seq = int(redis.hincrby(keys.audit(pid), "seq", 1))
    fields = ev.to_stream(msgspec.structs.replace(e, seq=seq))
    raw = redis.xadd(keys.events(pid), fields)  # type: ignore[arg-type]
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def store(redis: Any, r: WaitlistRecord) -> None:
    """Write the entry into Redis as the scripts keep it (entries hash; the queue while live)."""
    pid = r.practice_id
    redis.hset(keys.waitlist_entries(pid), r.id, msgspec.json.encode(r))
    if r.status in ("waiting", "offered"):
        redis.zadd(keys.waitlist_queue(pid), {r.id: r.order})
    else:
        redis.zrem(keys.waitlist_queue(pid), r.id)


def hold_for(redis: Any, r: WaitlistRecord, state: str = "held") -> None:
    """The offer's hold as the waitlist scripts write it: an ordinary hold with ``entry_id``, its claim and
    its expiry (docs/waitlist.md)."""
    o = r.offer
    assert o is not None
    pid = r.practice_id
    redis.hset(
        keys.hold(pid, o.hold_id),
        mapping={
            "state": state, "practice_id": pid, "practitioner_id": o.practitioner_id, "visit_type_id": r.visit_type_id,
            "start": o.start, "end": o.end, "expires_ms": o.expires_ms, "entry_id": r.id,
        },
    )  # fmt: skip
    if state == "held":
        redis.zadd(keys.claims(pid, o.practitioner_id), {f"h|{o.hold_id}|{o.end}|{o.expires_ms}": o.start})
        redis.zadd(keys.hold_expiries(pid), {o.hold_id: o.expires_ms})
