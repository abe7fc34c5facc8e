"""The API driven over HTTP: a practice set up, searches, the dates tests book on. Works with any client whose
get/post/put return httpx-like responses (a Litestar TestClient, an httpx.Client on a real server)."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import httpx

from tests.support.config import WEEKDAYS


def next_weekday(weekday: int, after_days: int = 2) -> dt.date:
    day = dt.date.today() + dt.timedelta(days=after_days)
    while day.weekday() != weekday:
        day += dt.timedelta(days=1)
    return day


def setup_practice(
    c: Any,
    tz: str = "Europe/Paris",
    durations: tuple[int, ...] = (30,),
    practitioners: int = 1,
    weekly: list[dict[str, str]] | None = None,
    **schedule: Any,
) -> dict[str, Any]:
    """Create a practice with practitioners, visit types and one weekly schedule."""
    p = c.post("/v1/practices", json={"name": "Test practice", "timezone": tz})
    assert p.status_code == 201, p.text
    pid = p.json()["id"]
    prs = []
    for i in range(practitioners):
        r = c.post(f"/v1/practices/{pid}/practitioners", json={"name": f"Dr {i}"})
        assert r.status_code == 201, r.text
        prs.append(r.json()["id"])
    vts = {}
    for d in durations:
        r = c.post(f"/v1/practices/{pid}/visit-types", json={"name": f"{d} min", "duration_minutes": d})
        assert r.status_code == 201, r.text
        vts[d] = r.json()["id"]
    body = {"weekly": weekly or [{"day": d, "start": "08:00", "end": "12:00"} for d in WEEKDAYS], **schedule}
    for pr in prs:
        r = c.put(f"/v1/practitioners/{pr}/schedule", json=body)
        assert r.status_code == 200, r.text
    return {"practice_id": pid, "practitioners": prs, "visit_types": vts, "tz": tz}


def search(c: Any, pid: str, vt: str, day: dt.date, days: int = 1, **params: Any) -> list[dict[str, str]]:
    r = c.get(
        f"/v1/practices/{pid}/availability",
        params={"date": day.isoformat(), "visit_type_id": vt, "days": days, **params},
    )
    assert r.status_code == 200, r.text
    return r.json()["slots"]  # type: ignore[no-any-return]


def ready(url: str, timeout: float = 2) -> bool:
    """Whether a server at ``url`` answers /readyz with 200 (False while it cannot be reached)."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/readyz", timeout=timeout).status_code == 200
    return False
