"""Bad input: every endpoint that takes input answers a 4xx problem with a stable code, never a 500,
and changes nothing (API.md "Conventions": naive instants are 422, unknown ids 404, off-grid starts 409).

One module-scoped world (two practices, a live hold, a booked appointment) is shared by every case; each case
snapshots the practices' Redis state (every key under their hash tags, events stream length first), the
availability search and the global practice count before and after the bad request and asserts equality.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis as redis_sync
from litestar.testing import TestClient

from api.app import create_app
from tests.support.config import AUTH, WEEKDAYS, settings_for
from tests.support.http import next_weekday, setup_practice

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"
PRACTICES_SET = "bk:v1:practices"
VALID_SCHEDULE = {"weekly": [{"day": d, "start": "08:00", "end": "12:00"} for d in WEEKDAYS], "horizon_days": 21}


# ----------------------------------------------------------------------------------------------- the world
@dataclass
class World:
    client: TestClient[Any]  # the client under test (admin, search auditing on, as deployed)
    quiet: TestClient[Any]  # for snapshots: search auditing off, so observing appends nothing
    ids: dict[str, str] = field(default_factory=dict)

    def sub(self, value: Any) -> Any:
        """Substitute ${NAME} placeholders in strings, recursively through JSON-like values."""
        if isinstance(value, str):
            text = string.Template(value).substitute(self.ids)
            return int(text[4:]) if text.startswith("int:") else text
        if isinstance(value, bytes):
            return string.Template(value.decode("latin-1")).substitute(self.ids).encode("latin-1")
        if isinstance(value, dict):
            return {self.sub(k): self.sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.sub(v) for v in value]
        return value


def _open(redis_url: str, **kw: Any) -> TestClient[Any]:
    c: TestClient[Any] = TestClient(create_app(settings_for(redis_url, **kw), background=False))
    c.__enter__()
    c.headers.update(AUTH)
    return c


def build_world(client: TestClient[Any], quiet: TestClient[Any]) -> World:
    """Two practices; on practice P a live hold at 10:00 and a booked appointment at 11:00 of one day."""
    p = setup_practice(client, horizon_days=21)
    q = setup_practice(client, tz="America/New_York", horizon_days=21)
    pid, pr, vt = p["practice_id"], p["practitioners"][0], p["visit_types"][30]
    day = next_weekday(2)  # a Wednesday 2 to 8 days ahead, well inside the horizon
    slots = quiet.get(
        f"/v1/practices/{pid}/availability", params={"date": day.isoformat(), "visit_type_id": vt}
    ).json()["slots"]
    by_time = {s["start"][11:16]: s["start"] for s in slots}
    assert {"09:00", "10:00", "11:00"} <= by_time.keys(), by_time
    off = by_time["09:00"][19:]  # the practice's UTC offset on that day, e.g. "+01:00"
    h = client.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": by_time["10:00"]})
    assert h.status_code == 201, h.text
    h2 = client.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": by_time["11:00"]})
    assert h2.status_code == 201, h2.text
    a = client.post(
        "/v1/appointments",
        json={"hold_id": h2.json()["id"], "patient": {"name": "Ada L", "email": "ada@example.org"}},
    )
    assert a.status_code == 201, a.text
    w = World(client, quiet)
    unknown_p = secrets.token_hex(8)
    w.ids = {
        "P": pid,
        "PR": pr,
        "VT": vt,
        "Q": q["practice_id"],
        "QPR": q["practitioners"][0],
        "QVT": q["visit_types"][30],
        "HOLD": h.json()["id"],
        "USED_HOLD": h2.json()["id"],
        "APPT": a.json()["id"],
        "DAY": day.isoformat(),
        "PAST": (dt.date.today() - dt.timedelta(days=1)).isoformat(),
        "FAR": (day + dt.timedelta(days=70)).isoformat(),
        "OFF": off,
        "EPOCH_0900": str(int(dt.datetime.fromisoformat(by_time["09:00"]).timestamp())),
        # well-formed but nonexistent ids (engine/ids.py formats)
        "NO_P": unknown_p,
        "NO_PR": f"{pid}.r{secrets.token_hex(6)}",
        "NO_PR_OF_NO_P": f"{unknown_p}.r{secrets.token_hex(6)}",
        "NO_VT": f"{pid}.v{secrets.token_hex(6)}",
        "NO_HOLD": f"{pr}.h{secrets.token_urlsafe(16)}",
        "NO_HOLD_OF_NO_PR": f"{pid}.r{secrets.token_hex(6)}.h{secrets.token_urlsafe(16)}",
        "NO_APPT": f"{pid}.a{secrets.token_urlsafe(12)}",
        "NO_APPT_OF_NO_P": f"{unknown_p}.a{secrets.token_urlsafe(12)}",
    }
    return w


@pytest.fixture(scope="module")
def world(redis_url: str) -> Iterator[World]:
    """Shared by the cases that (when the application is right) change nothing."""
    client, quiet = _open(redis_url), _open(redis_url, audit_searches=False)
    try:
        yield build_world(client, quiet)
    finally:
        quiet.__exit__(None, None, None)
        client.__exit__(None, None, None)


@pytest.fixture
def fresh_world(make_client: Any) -> World:
    """A world of its own, for cases that a known bug lets through (they would change the shared one)."""
    return build_world(make_client(background=False), make_client(background=False, audit_searches=False))


# ----------------------------------------------------------------------------------------------- snapshots
def _key_value(r: redis_sync.Redis, key: bytes) -> Any:
    kind = r.type(key)
    if kind == b"hash":
        return kind, r.hgetall(key)
    if kind == b"zset":
        return kind, r.zrange(key, 0, -1, withscores=True)
    if kind == b"stream":
        last = r.xrevrange(key, count=1)
        return kind, r.xlen(key), last[0][0] if last else None
    if kind == b"string":
        return kind, r.get(key)
    if kind == b"set":
        return kind, sorted(r.smembers(key))
    if kind == b"list":
        return kind, r.lrange(key, 0, -1)
    return (kind,)


def snapshot(w: World, r: redis_sync.Redis) -> dict[str, Any]:
    ids = w.ids
    snap: dict[str, Any] = {
        "events": {pid: r.xlen(f"bk:v1:{{p:{pid}}}:events") for pid in (ids["P"], ids["Q"])},
        "practices": r.scard(PRACTICES_SET),
    }
    for pid in (ids["P"], ids["Q"]):
        for key in sorted(r.scan_iter(match=f"bk:v1:{{p:{pid}}}:*", count=1000)):
            snap[key.decode()] = _key_value(r, key)
    for pid, vt in ((ids["P"], ids["VT"]), (ids["Q"], ids["QVT"])):
        res = w.quiet.get(
            f"/v1/practices/{pid}/availability", params={"date": ids["DAY"], "visit_type_id": vt, "days": 3}
        )
        assert res.status_code == 200, res.text
        snap[f"availability:{pid}"] = res.json()["slots"]
    return snap


def assert_problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, f"expected {status} {code}, got {r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").split(";")[0].strip() == PROBLEM_JSON, r.headers
    body = r.json()
    missing = {"type", "title", "status", "detail", "code"} - body.keys()
    assert not missing, f"problem lacks {missing}: {body}"
    assert body["status"] == status
    assert body["code"] == code, body
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str)


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    method: str
    path: str
    status: int
    code: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    # other acceptable outcomes (status, code); code None means a 2xx whose "slots" are empty
    also: tuple[tuple[int, str | None], ...] = ()


_OMIT = object()


def c(method: str, path: str, status: int, code: str, body: Any = _OMIT, **kw: Any) -> Case:
    if body is not _OMIT:
        kw["json"] = body
    return Case(method, path, status, code, **kw)


def raw(method: str, path: str, content: bytes, **kw: Any) -> Case:
    return Case(
        method, path, 400, "malformed_request", content=content, headers={"content-type": "application/json"}, **kw
    )


V, NF, SU = "validation_error", "not_found", "slot_unavailable"
TZ = "unknown_timezone"
MALFORMED = {
    "truncated": b'{"name": "x",',
    "single_quotes": b"{'name': 'x'}",
    "trailing_garbage": b'{"name": "x"} x',
    "nan": b'{"name": NaN}',
    "bare_word": b"hello",
}


def hold_body(start: str, **over: Any) -> dict[str, Any]:
    return {"practitioner_id": "${PR}", "visit_type_id": "${VT}", "start": start, **over}


def sched(**over: Any) -> dict[str, Any]:
    return {**VALID_SCHEDULE, **over}


def win(day: str = "mon", start: str = "09:00", end: str = "12:00", **over: Any) -> dict[str, Any]:
    return sched(weekly=[{"day": day, "start": start, "end": end, **over}])


def clo(start: str, end: str, **over: Any) -> dict[str, Any]:
    return sched(closures=[{"start": start, "end": end, **over}])


PATIENT = {"name": "Grace H", "email": "grace@example.org"}


def book_body(**patient: Any) -> dict[str, Any]:
    return {"hold_id": "${HOLD}", "patient": {**PATIENT, **patient}}


PRACTICES, PRS, VTS = "/v1/practices", "/v1/practices/${P}/practitioners", "/v1/practices/${P}/visit-types"
SCHED, AVAIL = "/v1/practitioners/${PR}/schedule", "/v1/practices/${P}/availability"


def avail(**params: Any) -> dict[str, Any]:
    base = {"date": "${DAY}", "visit_type_id": "${VT}"}
    base.update(params)
    return {k: v for k, v in base.items() if v is not None}


CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- POST /v1/practices
    **{f"practice-malformed-{k}": raw("POST", PRACTICES, v) for k, v in MALFORMED.items()},
    "practice-unknown-zone": c("POST", PRACTICES, 422, TZ, {"name": "x", "timezone": "Mars/Olympus_Mons"}),
    "practice-zone-wrong-case": c("POST", PRACTICES, 422, TZ, {"name": "x", "timezone": "europe/paris"}),
    "practice-zone-path-traversal": c("POST", PRACTICES, 422, TZ, {"name": "x", "timezone": "../../etc/passwd"}),
    "practice-zone-absolute-path": c("POST", PRACTICES, 422, TZ, {"name": "x", "timezone": "/etc/localtime"}),
    "practice-zone-offset": c("POST", PRACTICES, 422, TZ, {"name": "x", "timezone": "+02:00"}),
    "practice-zone-abbreviation": c("POST", PRACTICES, 422, TZ, {"name": "x", "timezone": "CEST"}),
    "practice-zone-empty": c("POST", PRACTICES, 422, V, {"name": "x", "timezone": ""}),
    "practice-zone-too-long": c("POST", PRACTICES, 422, V, {"name": "x", "timezone": "Europe/" + "x" * 80}),
    "practice-zone-number": c("POST", PRACTICES, 422, V, {"name": "x", "timezone": 2}),
    "practice-zone-null": c("POST", PRACTICES, 422, V, {"name": "x", "timezone": None}),
    "practice-missing-zone": c("POST", PRACTICES, 422, V, {"name": "x"}),
    "practice-missing-name": c("POST", PRACTICES, 422, V, {"timezone": "Europe/Paris"}),
    "practice-name-empty": c("POST", PRACTICES, 422, V, {"name": "", "timezone": "Europe/Paris"}),
    "practice-name-too-long": c("POST", PRACTICES, 422, V, {"name": "x" * 201, "timezone": "Europe/Paris"}),
    "practice-name-list": c("POST", PRACTICES, 422, V, {"name": ["x"], "timezone": "Europe/Paris"}),
    "practice-unknown-field": c("POST", PRACTICES, 422, V, {"name": "x", "timezone": "UTC", "owner": "me"}),
    "practice-body-array": c("POST", PRACTICES, 422, V, []),
    "practice-body-null": c("POST", PRACTICES, 422, V, None),
    "practice-body-string": c("POST", PRACTICES, 422, V, "Europe/Paris"),
    "practice-body-empty": Case("POST", PRACTICES, 422, V, content=b"", headers={"content-type": "application/json"}),
    "practice-body-too-large": c(
        "POST", PRACTICES, 413, "payload_too_large", {"name": "x" * 70_000, "timezone": "UTC"}
    ),
    # ---------------------------------------------------------------- GET practice and lists (ids only)
    "get-practice-unknown": c("GET", "/v1/practices/${NO_P}", 404, NF),
    "get-practice-malformed": c("GET", "/v1/practices/nope", 404, NF),
    "get-practice-uppercase-hex": c("GET", "/v1/practices/0123456789ABCDEF", 404, NF),
    "get-practice-child-id": c("GET", "/v1/practices/${PR}", 404, NF),
    "list-practitioners-unknown": c("GET", "/v1/practices/${NO_P}/practitioners", 404, NF),
    "list-visit-types-unknown": c("GET", "/v1/practices/${NO_P}/visit-types", 404, NF),
    # ---------------------------------------------------------------- POST practitioners
    **{f"practitioner-malformed-{k}": raw("POST", PRS, v) for k, v in MALFORMED.items()},
    "practitioner-unknown-practice": c("POST", "/v1/practices/${NO_P}/practitioners", 404, NF, {"name": "Dr X"}),
    "practitioner-malformed-practice": c("POST", "/v1/practices/nope/practitioners", 404, NF, {"name": "Dr X"}),
    "practitioner-practice-is-child-id": c("POST", "/v1/practices/${PR}/practitioners", 404, NF, {"name": "Dr X"}),
    "practitioner-missing-name": c("POST", PRS, 422, V, {}),
    "practitioner-name-null": c("POST", PRS, 422, V, {"name": None}),
    "practitioner-name-number": c("POST", PRS, 422, V, {"name": 5}),
    "practitioner-name-empty": c("POST", PRS, 422, V, {"name": ""}),
    "practitioner-unknown-field": c("POST", PRS, 422, V, {"name": "Dr X", "speciality": "GP"}),
    "practitioner-body-array": c("POST", PRS, 422, V, [{"name": "Dr X"}]),
    # ---------------------------------------------------------------- POST visit-types
    **{f"visit-type-malformed-{k}": raw("POST", VTS, v) for k, v in MALFORMED.items()},
    "visit-type-unknown-practice": c(
        "POST", "/v1/practices/${NO_P}/visit-types", 404, NF, {"name": "x", "duration_minutes": 30}
    ),
    "visit-type-malformed-practice": c(
        "POST", "/v1/practices/x/visit-types", 404, NF, {"name": "x", "duration_minutes": 30}
    ),
    **{
        f"visit-type-duration-{k}": c("POST", VTS, 422, V, {"name": "x", "duration_minutes": v})
        for k, v in {
            "4": 4,
            "481": 481,
            "0": 0,
            "negative": -30,
            "fraction": 30.5,
            "bool": True,
            "null": None,
            "huge": 10**30,
            "list": [30],
        }.items()
    },
    "visit-type-missing-duration": c("POST", VTS, 422, V, {"name": "x"}),
    "visit-type-missing-name": c("POST", VTS, 422, V, {"duration_minutes": 30}),
    "visit-type-unknown-field": c("POST", VTS, 422, V, {"name": "x", "duration_minutes": 30, "price": 25}),
    # ---------------------------------------------------------------- PUT schedule
    **{f"schedule-malformed-{k}": raw("PUT", SCHED, v) for k, v in MALFORMED.items()},
    "schedule-unknown-practitioner": c("PUT", "/v1/practitioners/${NO_PR}/schedule", 404, NF, VALID_SCHEDULE),
    "schedule-practitioner-of-unknown-practice": c(
        "PUT", "/v1/practitioners/${NO_PR_OF_NO_P}/schedule", 404, NF, VALID_SCHEDULE
    ),
    "schedule-malformed-practitioner": c("PUT", "/v1/practitioners/nope/schedule", 404, NF, VALID_SCHEDULE),
    "schedule-visit-type-as-practitioner": c("PUT", "/v1/practitioners/${VT}/schedule", 404, NF, VALID_SCHEDULE),
    "schedule-practice-as-practitioner": c("PUT", "/v1/practitioners/${P}/schedule", 404, NF, VALID_SCHEDULE),
    "get-schedule-unknown-practitioner": c("GET", "/v1/practitioners/${NO_PR}/schedule", 404, NF),
    "get-schedule-malformed-practitioner": c("GET", "/v1/practitioners/nope/schedule", 404, NF),
    **{
        f"schedule-{name}-{v!r}": c("PUT", SCHED, 422, V, sched(**{name: v}))
        for name, values in {
            "slot_step_minutes": [0, 241, -15, 15.5, None, 10**30],
            "horizon_days": [0, 731, -1, 90.5, 10**30],
            "min_notice_minutes": [-1, 0.5, 10**30],
        }.items()
        for v in values
    },
    **{
        f"schedule-day-{d or 'empty'}": c("PUT", SCHED, 422, V, win(day=d))
        for d in ["monday", "Mon", "MON", "lun", "", "1"]
    },
    "schedule-day-number": c("PUT", SCHED, 422, V, win(day=1)),  # type: ignore[arg-type]
    "schedule-day-null": c("PUT", SCHED, 422, V, win(day=None)),  # type: ignore[arg-type]
    **{
        f"schedule-start-{t or 'empty'}": c("PUT", SCHED, 422, V, win(start=t))
        for t in ["9:00", "25:00", "09:60", "0900", "09:00:00", "09h00", "", "-1:00", "09:5"]
    },
    **{f"schedule-end-{t}": c("PUT", SCHED, 422, V, win(end=t)) for t in ["24:01", "25:00", "12:0", "noon"]},
    "schedule-window-end-before-start": c("PUT", SCHED, 422, V, win(start="12:00", end="09:00")),
    "schedule-window-empty": c("PUT", SCHED, 422, V, win(start="09:00", end="09:00")),
    "schedule-window-start-24": c("PUT", SCHED, 422, V, win(start="24:00", end="24:00")),
    "schedule-window-unknown-field": c("PUT", SCHED, 422, V, win(note="x")),
    "schedule-window-missing-end": c("PUT", SCHED, 422, V, sched(weekly=[{"day": "mon", "start": "09:00"}])),
    "schedule-window-not-object": c("PUT", SCHED, 422, V, sched(weekly=["mon 09:00-12:00"])),
    "schedule-weekly-not-list": c("PUT", SCHED, 422, V, sched(weekly={"mon": ["09:00", "12:00"]})),
    "schedule-weekly-null": c("PUT", SCHED, 422, V, sched(weekly=None)),
    "schedule-weekly-too-many": c(
        "PUT", SCHED, 422, V, sched(weekly=[{"day": "mon", "start": "09:00", "end": "09:30"}] * 501)
    ),
    "schedule-missing-weekly": c("PUT", SCHED, 422, V, {"slot_step_minutes": 15}),
    "schedule-unknown-field": c("PUT", SCHED, 422, V, sched(timezone="Europe/Paris")),
    "schedule-body-array": c("PUT", SCHED, 422, V, [VALID_SCHEDULE]),
    "schedule-closure-naive-start": c("PUT", SCHED, 422, V, clo("2027-12-24T00:00:00", "2027-12-27T00:00:00+01:00")),
    "schedule-closure-naive-end": c("PUT", SCHED, 422, V, clo("2027-12-24T00:00:00+01:00", "2027-12-27T00:00:00")),
    "schedule-closure-both-naive": c("PUT", SCHED, 422, V, clo("2027-12-24T00:00:00", "2027-12-27T00:00:00")),
    "schedule-closure-date-only": c("PUT", SCHED, 422, V, clo("2027-12-24", "2027-12-27")),
    "schedule-closure-bad-date": c("PUT", SCHED, 422, V, clo("2027-02-30T00:00:00Z", "2027-03-02T00:00:00Z")),
    "schedule-closure-bad-offset": c("PUT", SCHED, 422, V, clo("2027-12-24T00:00:00+25:00", "2027-12-27T00:00:00Z")),
    "schedule-closure-end-before-start": c("PUT", SCHED, 422, V, clo("2027-12-27T00:00:00Z", "2027-12-24T00:00:00Z")),
    "schedule-closure-empty": c("PUT", SCHED, 422, V, clo("2027-12-24T00:00:00Z", "2027-12-24T01:00:00+01:00")),
    "schedule-closure-reason-too-long": c(
        "PUT", SCHED, 422, V, clo("2027-12-24T00:00:00Z", "2027-12-27T00:00:00Z", reason="x" * 501)
    ),
    "schedule-closure-unknown-field": c(
        "PUT", SCHED, 422, V, clo("2027-12-24T00:00:00Z", "2027-12-27T00:00:00Z", all_day=True)
    ),
    "schedule-closure-missing-end": c("PUT", SCHED, 422, V, sched(closures=[{"start": "2027-12-24T00:00:00Z"}])),
    # ---------------------------------------------------------------- GET availability
    "search-unknown-practice": c("GET", "/v1/practices/${NO_P}/availability", 404, NF, params=avail()),
    "search-malformed-practice": c("GET", "/v1/practices/nope/availability", 404, NF, params=avail()),
    "search-unknown-visit-type": c("GET", AVAIL, 404, NF, params=avail(visit_type_id="${NO_VT}")),
    "search-other-practices-visit-type": c("GET", AVAIL, 404, NF, params=avail(visit_type_id="${QVT}")),
    "search-malformed-visit-type": c("GET", AVAIL, 404, NF, params=avail(visit_type_id="nope")),
    "search-visit-type-empty": c("GET", AVAIL, 422, V, params=avail(visit_type_id="")),
    "search-visit-type-too-long": c("GET", AVAIL, 422, V, params=avail(visit_type_id="v" * 201)),
    "search-missing-visit-type": c("GET", AVAIL, 422, V, params={"date": "${DAY}"}),
    "search-unknown-practitioner": c("GET", AVAIL, 404, NF, params=avail(practitioner_id="${NO_PR}")),
    "search-other-practices-practitioner": c("GET", AVAIL, 404, NF, params=avail(practitioner_id="${QPR}")),
    "search-malformed-practitioner": c("GET", AVAIL, 404, NF, params=avail(practitioner_id="nope")),
    "search-missing-date": c("GET", AVAIL, 422, V, params={"visit_type_id": "${VT}"}),
    **{
        f"search-date-{d or 'empty'}": c("GET", AVAIL, 422, V, params=avail(date=d))
        for d in ["2027-02-30", "2027-13-01", "2027-00-10", "27-03-01", "2027/03/01", "01-03-2027", "tomorrow", ""]
    },
    **{
        f"search-days-{d or 'empty'}": c("GET", AVAIL, 422, V, params=avail(days=d))
        for d in ["0", "32", "-1", "1.5", "x", "", "99999999999999999999999"]
    },
    # ---------------------------------------------------------------- POST /v1/holds
    **{f"hold-malformed-{k}": raw("POST", "/v1/holds", v) for k, v in MALFORMED.items()},
    "hold-naive-start": c("POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00:00")),
    "hold-naive-start-no-seconds": c("POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00")),
    "hold-date-only": c("POST", "/v1/holds", 422, V, hold_body("${DAY}")),
    "hold-time-only": c("POST", "/v1/holds", 422, V, hold_body("09:00:00${OFF}")),
    "hold-bad-date": c("POST", "/v1/holds", 422, V, hold_body("2027-02-30T09:00:00+01:00")),
    "hold-bad-offset": c("POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00:00+25:00")),
    "hold-bad-hour": c("POST", "/v1/holds", 422, V, hold_body("${DAY}T25:00:00${OFF}")),
    "hold-start-null": c("POST", "/v1/holds", 422, V, hold_body(None)),
    "hold-start-garbage": c("POST", "/v1/holds", 422, V, hold_body("next tuesday")),
    "hold-missing-start": c("POST", "/v1/holds", 422, V, {"practitioner_id": "${PR}", "visit_type_id": "${VT}"}),
    "hold-missing-practitioner": c(
        "POST", "/v1/holds", 422, V, {"visit_type_id": "${VT}", "start": "${DAY}T09:00:00${OFF}"}
    ),
    "hold-missing-visit-type": c(
        "POST", "/v1/holds", 422, V, {"practitioner_id": "${PR}", "start": "${DAY}T09:00:00${OFF}"}
    ),
    "hold-unknown-field": c("POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00:00${OFF}", note="x")),
    "hold-practitioner-number": c("POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00:00${OFF}", practitioner_id=7)),
    "hold-practitioner-empty": c("POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00:00${OFF}", practitioner_id="")),
    "hold-body-array": c("POST", "/v1/holds", 422, V, [hold_body("${DAY}T09:00:00${OFF}")]),
    "hold-idempotency-key-too-long": c(
        "POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00:00${OFF}"), headers={"Idempotency-Key": "k" * 201}
    ),
    "hold-unknown-practitioner": c(
        "POST", "/v1/holds", 404, NF, hold_body("${DAY}T09:00:00${OFF}", practitioner_id="${NO_PR}")
    ),
    "hold-practitioner-of-unknown-practice": c(
        "POST", "/v1/holds", 404, NF, hold_body("${DAY}T09:00:00${OFF}", practitioner_id="${NO_PR_OF_NO_P}")
    ),
    "hold-malformed-practitioner": c(
        "POST", "/v1/holds", 404, NF, hold_body("${DAY}T09:00:00${OFF}", practitioner_id="nope")
    ),
    "hold-visit-type-as-practitioner": c(
        "POST", "/v1/holds", 404, NF, hold_body("${DAY}T09:00:00${OFF}", practitioner_id="${VT}")
    ),
    "hold-unknown-visit-type": c(
        "POST", "/v1/holds", 404, NF, hold_body("${DAY}T09:00:00${OFF}", visit_type_id="${NO_VT}")
    ),
    "hold-other-practices-visit-type": c(
        "POST", "/v1/holds", 404, NF, hold_body("${DAY}T09:00:00${OFF}", visit_type_id="${QVT}")
    ),
    "hold-malformed-visit-type": c(
        "POST", "/v1/holds", 404, NF, hold_body("${DAY}T09:00:00${OFF}", visit_type_id="nope")
    ),
    # off the slot grid, or otherwise not offered right now: 409 slot_unavailable
    "hold-off-grid-minute": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T09:07:00${OFF}")),
    "hold-off-grid-seconds": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T09:00:30${OFF}")),
    "hold-off-grid-microseconds": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T09:00:00.5${OFF}")),
    "hold-wrong-offset": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T09:00:00+05:00")),
    "hold-before-window": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T07:00:00${OFF}")),
    "hold-ends-after-window": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T11:45:00${OFF}")),
    "hold-at-window-end": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T12:00:00${OFF}")),
    "hold-already-held": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T10:00:00${OFF}")),
    "hold-overlaps-hold": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T09:45:00${OFF}")),
    "hold-already-booked": c("POST", "/v1/holds", 409, SU, hold_body("${DAY}T11:00:00${OFF}")),
    "hold-in-the-past": c("POST", "/v1/holds", 409, SU, hold_body("${PAST}T09:00:00${OFF}")),
    "hold-beyond-horizon": c("POST", "/v1/holds", 409, SU, hold_body("${FAR}T09:00:00${OFF}")),
    # ---------------------------------------------------------------- GET / DELETE /v1/holds/{id}
    **{
        f"{m.lower()}-hold-{k}": c(m, f"/v1/holds/{v}", 404, NF)
        for m in ("GET", "DELETE")
        for k, v in {
            "unknown": "${NO_HOLD}",
            "of-unknown-practitioner": "${NO_HOLD_OF_NO_PR}",
            "malformed": "nope",
            "practitioner-id": "${PR}",
            "appointment-id": "${APPT}",
            "too-short-token": "${PR}.habc",
            "very-long": "${PR}.h" + "A" * 5000,
            "glob-chars": "${PR}.h" + "*" * 22,
        }.items()
    },
    # ---------------------------------------------------------------- POST /v1/appointments
    **{f"book-malformed-{k}": raw("POST", "/v1/appointments", v) for k, v in MALFORMED.items()},
    "book-unknown-hold": c("POST", "/v1/appointments", 404, NF, {"hold_id": "${NO_HOLD}", "patient": PATIENT}),
    "book-hold-of-unknown-practitioner": c(
        "POST", "/v1/appointments", 404, NF, {"hold_id": "${NO_HOLD_OF_NO_PR}", "patient": PATIENT}
    ),
    "book-malformed-hold": c("POST", "/v1/appointments", 404, NF, {"hold_id": "nope", "patient": PATIENT}),
    "book-appointment-id-as-hold": c("POST", "/v1/appointments", 404, NF, {"hold_id": "${APPT}", "patient": PATIENT}),
    "book-hold-empty": c("POST", "/v1/appointments", 422, V, {"hold_id": "", "patient": PATIENT}),
    "book-hold-number": c("POST", "/v1/appointments", 422, V, {"hold_id": 12, "patient": PATIENT}),
    "book-missing-hold": c("POST", "/v1/appointments", 422, V, {"patient": PATIENT}),
    "book-missing-patient": c("POST", "/v1/appointments", 422, V, {"hold_id": "${HOLD}"}),
    "book-patient-null": c("POST", "/v1/appointments", 422, V, {"hold_id": "${HOLD}", "patient": None}),
    "book-patient-string": c("POST", "/v1/appointments", 422, V, {"hold_id": "${HOLD}", "patient": "Grace"}),
    "book-unknown-field": c("POST", "/v1/appointments", 422, V, {**book_body(), "note": "x"}),
    "book-patient-unknown-field": c("POST", "/v1/appointments", 422, V, book_body(dob="1906-12-09")),
    "book-patient-missing-email": c(
        "POST", "/v1/appointments", 422, V, {"hold_id": "${HOLD}", "patient": {"name": "Grace H"}}
    ),
    "book-patient-missing-name": c(
        "POST", "/v1/appointments", 422, V, {"hold_id": "${HOLD}", "patient": {"email": "grace@example.org"}}
    ),
    "book-patient-name-empty": c("POST", "/v1/appointments", 422, V, book_body(name="")),
    "book-patient-name-too-long": c("POST", "/v1/appointments", 422, V, book_body(name="x" * 201)),
    **{
        f"book-email-{k}": c("POST", "/v1/appointments", 422, V, book_body(email=v))
        for k, v in {
            "no-at": "grace.example.org",
            "empty": "",
            "only-at": "@",
            "no-local": "@example.org",
            "no-domain": "grace@",
            "space": "grace h@example.org",
            "two-ats": "a@b@c",
            "number": 42,
            "null": None,
            "too-long": "g@" + "e" * 330,
        }.items()
    },
    **{
        f"book-phone-{k}": c("POST", "/v1/appointments", 422, V, book_body(phone=v))
        for k, v in {"letters": "call me", "number": 331234, "too-long": "1" * 41}.items()
    },
    # ---------------------------------------------------------------- GET /v1/appointments/{id}
    **{
        f"get-appointment-{k}": c("GET", f"/v1/appointments/{v}", 404, NF)
        for k, v in {
            "unknown": "${NO_APPT}",
            "of-unknown-practice": "${NO_APPT_OF_NO_P}",
            "malformed": "nope",
            "hold-id": "${HOLD}",
            "practice-id": "${P}",
        }.items()
    },
    # ---------------------------------------------------------------- POST /v1/appointments/{id}/cancel
    **{
        f"cancel-{k}": c("POST", f"/v1/appointments/{v}/cancel", 404, NF, {"reason": "x"})
        for k, v in {
            "unknown": "${NO_APPT}",
            "of-unknown-practice": "${NO_APPT_OF_NO_P}",
            "malformed": "nope",
            "hold-id": "${HOLD}",
            "practice-id": "${P}",
        }.items()
    },
    **{f"cancel-malformed-{k}": raw("POST", "/v1/appointments/${APPT}/cancel", v) for k, v in MALFORMED.items()},
    "cancel-reason-number": c("POST", "/v1/appointments/${APPT}/cancel", 422, V, {"reason": 5}),
    "cancel-reason-too-long": c("POST", "/v1/appointments/${APPT}/cancel", 422, V, {"reason": "x" * 501}),
    "cancel-unknown-field": c("POST", "/v1/appointments/${APPT}/cancel", 422, V, {"why": "x"}),
    "cancel-body-array": c("POST", "/v1/appointments/${APPT}/cancel", 422, V, ["x"]),
    "cancel-body-string": c("POST", "/v1/appointments/${APPT}/cancel", 422, V, "feeling better"),
}

# Out-of-range instants and dates that the server cannot represent: any honest 4xx (or an empty search) will do.
ALSO_HOLD = ((422, V),)
ALSO_SEARCH = ((200, None),)
FORMER_BUGS: dict[str, tuple[Case, str]] = {
    "hold-start-year-9999": (
        c("POST", "/v1/holds", 409, SU, hold_body("9999-12-31T23:45:00Z"), also=ALSO_HOLD),
        "was a 500 (fixed): hold renders the hold (format_instant -> datetime.fromtimestamp) before checking the slot; "
        "an end in year 10000 raises ValueError/OverflowError",
    ),
    "hold-start-year-1": (
        c("POST", "/v1/holds", 409, SU, hold_body("0001-01-01T00:00:00+14:00"), also=ALSO_HOLD),
        "was a 500 (fixed): hold renders the hold before checking the slot; a start before year 1 UTC raises "
        "'year 0 is out of range' in format_instant",
    ),
    "search-date-9999-12-31": (
        c("GET", AVAIL, 422, V, params=avail(date="9999-12-31"), also=ALSO_SEARCH),
        "was a 500 (fixed): search computes day_bounds(date + 1 day) -> OverflowError: date value out of range",
    ),
    "search-date-9999-12-01-days-31": (
        c("GET", AVAIL, 422, V, params=avail(date="9999-12-01", days="31"), also=ALSO_SEARCH),
        "was a 500 (fixed): search computes date + timedelta(days) past 9999-12-31 -> OverflowError",
    ),
    "search-date-0001-01-01": (
        c("GET", AVAIL, 422, V, params=avail(date="0001-01-01"), also=ALSO_SEARCH),
        "was a 500 (fixed): timeutil._exists -> astimezone(UTC) of local midnight 0001-01-01 in Europe/Paris (+00:09:21) "
        "-> OverflowError: date value out of range",
    ),
}

BODY_PATHS = {
    "practice": ("POST", PRACTICES),
    "practitioner": ("POST", PRS),
    "visit-type": ("POST", VTS),
    "schedule": ("PUT", SCHED),
    "hold": ("POST", "/v1/holds"),
    "book": ("POST", "/v1/appointments"),
    "cancel": ("POST", "/v1/appointments/${APPT}/cancel"),
}
NOT_UTF8 = (
    "was a 500 (fixed): a body that is not UTF-8 escapes as UnicodeDecodeError from litestar's Request.json() "
    "(msgspec decode) and api/problems.py maps only HTTPException to 4xx, so _crash answers 500 internal_error "
    "instead of 400 malformed_request"
)
for name, (method, path) in BODY_PATHS.items():
    FORMER_BUGS[f"{name}-malformed-not-utf8"] = (raw(method, path, b'{"name": "\xff\xfe"}'), NOT_UTF8)

# Wrong JSON types that Litestar's lax (strict=False) msgspec conversion coerces instead of rejecting: the request
# succeeds and changes state, so each runs on a world of its own.
LAX = (
    "wrong JSON type accepted: Litestar converts request bodies with msgspec strict=False, so a numeric string "
    "passes as an int and an epoch number as an instant (API.md: instants are RFC 3339 strings with an offset); "
    "the request succeeds and changes state instead of a 422 validation_error"
)
COERCED: dict[str, Case] = {
    "visit-type-duration-string": c("POST", VTS, 422, V, {"name": "x", "duration_minutes": "30"}),
    "schedule-slot-step-string": c("PUT", SCHED, 422, V, sched(slot_step_minutes="15")),
    "schedule-horizon-string": c("PUT", SCHED, 422, V, sched(horizon_days="90")),
    "schedule-min-notice-string": c("PUT", SCHED, 422, V, sched(min_notice_minutes="0")),
    "schedule-closure-epoch-numbers": c("PUT", SCHED, 422, V, clo("int:${EPOCH_0900}", "int:${EPOCH_0900}0")),
    "hold-start-epoch-number": c("POST", "/v1/holds", 422, V, hold_body("int:${EPOCH_0900}")),
}

# Control characters in text (issue 22, item 1: a NUL answered 201 and then stopped the persister for good, since
# PostgreSQL refuses NUL in text). Names, e-mails, phones and ids take none; a cancel or closure reason may carry tab,
# LF and CR (free text), no other. A trailing LF is refused too (Python's ``$`` matches before it).
CONTROL = {"nul": "\x00", "bell": "\x07", "esc": "\x1b", "del": "\x7f", "unit-sep": "\x1f"}
LINE_BREAKS = {"lf": "\n", "cr": "\r", "tab": "\t", "trailing-lf": None}


def _with(ch: str | None) -> str:
    return "Ada L\n" if ch is None else f"Ada{ch}L"


CONTROL_CASES: dict[str, Case] = {}
for k, ch in {**CONTROL, **LINE_BREAKS}.items():
    text_ = _with(ch)
    CONTROL_CASES |= {
        f"control-{k}-practice-name": c("POST", PRACTICES, 422, V, {"name": text_, "timezone": "UTC"}),
        f"control-{k}-practitioner-name": c("POST", PRS, 422, V, {"name": text_}),
        f"control-{k}-visit-type-name": c("POST", VTS, 422, V, {"name": text_, "duration_minutes": 30}),
        f"control-{k}-patient-name": c("POST", "/v1/appointments", 422, V, book_body(name=text_)),
        f"control-{k}-patient-email": c(
            "POST", "/v1/appointments", 422, V, book_body(email=text_.replace(" ", "") + "@example.org")
        ),
        f"control-{k}-patient-phone": c(
            "POST", "/v1/appointments", 422, V, book_body(phone="+33 1" + (text_[3] if ch else "\n"))
        ),
        f"control-{k}-hold-id": c(
            "POST", "/v1/appointments", 422, V, {"hold_id": "${HOLD}" + (ch or "\n"), "patient": PATIENT}
        ),
        f"control-{k}-hold-practitioner-id": c(
            "POST", "/v1/holds", 422, V, hold_body("${DAY}T09:00:00${OFF}", practitioner_id="${PR}" + (ch or "\n"))
        ),
        f"control-{k}-reschedule-hold-id": c(
            "POST", "/v1/appointments/${APPT}/reschedule", 422, V, {"hold_id": "${HOLD}" + (ch or "\n")}
        ),
        f"control-{k}-schedule-start": c("PUT", SCHED, 422, V, win(start="09:00" + (ch or "\n"))),
        f"control-{k}-waitlist-patient-name": c(
            "POST",
            "/v1/practices/${P}/waitlist",
            422,
            V,
            {
                "visit_type_id": "${VT}",
                "from_date": "${DAY}",
                "to_date": "${DAY}",
                "patient": {**PATIENT, "name": text_},
            },
        ),
        f"control-{k}-waitlist-visit-type-id": c(
            "POST",
            "/v1/practices/${P}/waitlist",
            422,
            V,
            {"visit_type_id": "${VT}" + (ch or "\n"), "from_date": "${DAY}", "to_date": "${DAY}", "patient": PATIENT},
        ),
        f"control-{k}-waitlist-from-time": c(
            "POST",
            "/v1/practices/${P}/waitlist",
            422,
            V,
            {
                "visit_type_id": "${VT}",
                "from_date": "${DAY}",
                "to_date": "${DAY}",
                "from_time": "09:00" + (ch or "\n"),
                "patient": PATIENT,
            },
        ),
    }
for k, ch in CONTROL.items():  # free text: these are refused, tab, LF and CR are not
    CONTROL_CASES |= {
        f"control-{k}-cancel-reason": c("POST", "/v1/appointments/${APPT}/cancel", 422, V, {"reason": f"ill{ch}ness"}),
        f"control-{k}-closure-reason": c(
            "PUT", SCHED, 422, V, clo("2027-12-24T00:00:00Z", "2027-12-27T00:00:00Z", reason=f"holi{ch}days")
        ),
    }
CASES |= CONTROL_CASES

PARAMS = [pytest.param(case, id=name) for name, case in CASES.items()] + [
    pytest.param(case, id=name) for name, (case, reason) in FORMER_BUGS.items()
]
COERCED_PARAMS = [pytest.param(case, id=name) for name, case in COERCED.items()]


def send(w: World, case: Case) -> Any:
    kw: dict[str, Any] = {}
    if case.content is not None:
        kw["content"] = case.content  # raw bytes are sent as they are (no placeholders in them)
    elif case.json is not None or case.method in ("POST", "PUT"):
        kw["content"] = json.dumps(w.sub(case.json)).encode()
        kw["headers"] = {"content-type": "application/json"}
    if case.params is not None:
        kw["params"] = w.sub(case.params)
    if case.headers:
        kw["headers"] = {**kw.get("headers", {}), **case.headers}
    return w.client.request(case.method, w.sub(case.path), **kw)


def check(w: World, r_: redis_sync.Redis, case: Case) -> None:
    before = snapshot(w, r_)
    r = send(w, case)
    assert r.status_code < 500, f"server error on bad input: {r.status_code} {r.text}"
    expected = ((case.status, case.code), *case.also)
    matched = [(s, code) for s, code in expected if s == r.status_code]
    assert matched, f"expected one of {expected}, got {r.status_code}: {r.text}"
    status, code = matched[0]
    if code is None:
        assert r.json()["slots"] == [], r.text
    else:
        assert_problem(r, status, code)
    after = snapshot(w, r_)
    assert after["events"] == before["events"], "the bad request appended to an event stream"
    assert after == before


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_is_a_4xx_problem_and_changes_nothing(world: World, rsync: redis_sync.Redis, case: Case) -> None:
    check(world, rsync, case)


@pytest.mark.parametrize("case", COERCED_PARAMS)
def test_wrong_json_types_are_not_coerced(fresh_world: World, rsync: redis_sync.Redis, case: Case) -> None:
    check(fresh_world, rsync, case)


def test_world_is_sane(world: World) -> None:
    """The controls behind the cases: the ids in use are real, 09:00 is offered, the hold is live, the
    appointment booked (so 404s and 409s above are about the input, not a broken fixture)."""
    ids, c_ = world.ids, world.client
    assert c_.get(f"/v1/practices/{ids['P']}").status_code == 200
    assert c_.get(f"/v1/practitioners/{ids['PR']}/schedule").status_code == 200
    assert c_.get(f"/v1/holds/{ids['HOLD']}").json()["status"] == "held"
    assert c_.get(f"/v1/appointments/{ids['APPT']}").json()["status"] == "booked"
    starts = [
        s["start"]
        for s in world.quiet.get(
            f"/v1/practices/{ids['P']}/availability", params={"date": ids["DAY"], "visit_type_id": ids["VT"]}
        ).json()["slots"]
    ]
    assert f"{ids['DAY']}T09:00:00{ids['OFF']}" in starts
    assert f"{ids['DAY']}T10:00:00{ids['OFF']}" not in starts  # held
    assert f"{ids['DAY']}T11:00:00{ids['OFF']}" not in starts  # booked
