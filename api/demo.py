"""The demo practice: a realistic week, so that a newcomer sees slots at once."""

from __future__ import annotations

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


def _ok(response: Any) -> Any:
    if response.status_code >= 400:
        raise SystemExit(
            f"seed-demo: {response.request.method} {response.request.url} -> {response.status_code} {response.text}"
        )
    return response.json()


def _tomorrow() -> str:
    import datetime as dt

    return (dt.date.today() + dt.timedelta(days=1)).isoformat()


def describe(seeded: dict[str, Any], base_url: str) -> str:
    p = seeded["practice"]
    vt = seeded["visit_types"][1]
    return (
        f"Demo practice {p['name']!r} ({p['timezone']}) id={p['id']}\n"
        f"  practitioners: {', '.join(x['id'] for x in seeded['practitioners'])}\n"
        f"  visit types:   {', '.join(x['name'] + '=' + x['id'] for x in seeded['visit_types'])}\n"
        f"Try: curl '{base_url}/v1/practices/{p['id']}/availability?date={_tomorrow()}&days=7"
        f"&visit_type_id={vt['id']}'"
    )
