"""The demo practice: a realistic week, so that a newcomer sees slots at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEMO_PRACTICE = {"name": "Rue de Rivoli Family Practice", "timezone": "Europe/Paris"}
DEMO_PRACTITIONERS = ["Dr Camille Martin", "Dr Louis Bernard", "Dr Inès Dubois"]
DEMO_VISIT_TYPES = [("Short consultation", 15), ("Consultation", 30), ("Full check-up", 45)]
_WEEKDAY = [{"day": d, "start": "08:30", "end": "12:30"} for d in ("mon", "tue", "wed", "thu", "fri")]
_AFTERNOON = [{"day": d, "start": "14:00", "end": "18:30"} for d in ("mon", "tue", "thu", "fri")]
DEMO_SCHEDULE: dict[str, Any] = {
    "weekly": [*_WEEKDAY, *_AFTERNOON, {"day": "sat", "start": "09:00", "end": "12:00"}],
    "closures": [],
    "slot_step_minutes": 15,
    "horizon_days": 60,
    "min_notice_minutes": 60,
}


def seed_over_http(base_url: str, token: str | None = None) -> dict[str, Any]:
    """Create the demo practice through the public HTTP API (works against any deployment)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as c:
        practice = _ok(c.post("/v1/practices", json=DEMO_PRACTICE))
        pid = practice["id"]
        prs = [_ok(c.post(f"/v1/practices/{pid}/practitioners", json={"name": n})) for n in DEMO_PRACTITIONERS]
        vts = [
            _ok(c.post(f"/v1/practices/{pid}/visit-types", json={"name": n, "duration_minutes": m}))
            for n, m in DEMO_VISIT_TYPES
        ]
        for pr in prs:
            _ok(c.put(f"/v1/practitioners/{pr['id']}/schedule", json=DEMO_SCHEDULE))
    return {"practice": practice, "practitioners": prs, "visit_types": vts}


def reuse_over_http(base_url: str, practice_id: str, token: str | None = None) -> dict[str, Any] | None:
    """The demo practice seeded before (its id kept in the data folder), read back through the HTTP API; None
    when this server does not know it (its store was emptied)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as c:
        got = c.get(f"/v1/practices/{practice_id}")
        if got.status_code == 404:
            return None
        practice = _ok(got)
        prs = _ok(c.get(f"/v1/practices/{practice_id}/practitioners"))["items"]
        order = [name for name, _ in DEMO_VISIT_TYPES]
        vts = sorted(
            _ok(c.get(f"/v1/practices/{practice_id}/visit-types"))["items"],
            key=lambda v: order.index(v["name"]) if v["name"] in order else len(order),
        )
    if len(vts) < 2 or not prs:
        return None
    return {"practice": practice, "practitioners": prs, "visit_types": vts}


def seed_once(base_url: str, token: str | None, state: Path | None) -> dict[str, Any]:
    """The demo practice named in ``state`` (a file of the data folder) if the server still has it, else a new
    one, its id written there: a restarted embedded server shows the same practice instead of adding one."""
    if state is not None and state.is_file():
        known = reuse_over_http(base_url, state.read_text().strip(), token)
        if known is not None:
            return known
    seeded = seed_over_http(base_url, token)
    if state is not None:
        tmp = state.with_suffix(".tmp")
        tmp.write_text(seeded["practice"]["id"])
        tmp.replace(state)
    return seeded


def _ok(response: Any) -> Any:
    if response.status_code >= 400:
        raise SystemExit(
            f"seed-demo: {response.request.method} {response.request.url} -> {response.status_code} {response.text}"
        )
    return response.json()


def _tomorrow() -> str:
    import datetime as dt

    return (dt.date.today() + dt.timedelta(days=1)).isoformat()


DEMO_ENV_FILE = "demo.env"  # in the data folder: the tour's shell variables (`booking demo-env` prints them)


def env_lines(seeded: dict[str, Any], base_url: str) -> str:
    """The README tour's shell variables for this demo practice: the API's base URL, the practice, its first
    practitioner and the 30-minute visit type."""
    return (
        f"export B={base_url} PRACTICE={seeded['practice']['id']} "
        f"DOC={seeded['practitioners'][0]['id']} VISIT={seeded['visit_types'][1]['id']}\n"
    )


def write_env(path: Path, seeded: dict[str, Any], base_url: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(env_lines(seeded, base_url))
    tmp.replace(path)


def describe(seeded: dict[str, Any], base_url: str) -> str:
    p = seeded["practice"]
    vt = seeded["visit_types"][1]
    return (
        f"Demo practice {p['name']!r} ({p['timezone']}) id={p['id']}\n"
        f"  practitioners: {', '.join(x['id'] for x in seeded['practitioners'])}\n"
        f"  visit types:   {', '.join(x['name'] + '=' + x['id'] for x in seeded['visit_types'])}\n"
        f"Try: curl '{base_url}/v1/practices/{p['id']}/availability?date={_tomorrow()}&days=7"
        f"&visit_type_id={vt['id']}'\n"
        f'The README tour\'s variables (B, PRACTICE, DOC, VISIT): eval "$(.venv/bin/booking demo-env)"'
    )
