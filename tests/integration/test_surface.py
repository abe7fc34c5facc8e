"""The surface around the engine (issue 21): ``Location`` on every 201, CORS for browser apps
(CORS_ALLOW_ORIGINS, off by default), ``booking --version``, and ``booking audit verify`` of an unknown
practice exiting non-zero."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient

from api.gauges import package_version
from tests.support.http import next_weekday, search, setup_practice
from tests.support.servers import run_cli, serve_env

pytestmark = [pytest.mark.integration]
PATIENT = {"name": "Ada", "email": "ada@example.org"}


def _created(r: Any, where: str) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    assert r.headers["location"] == where, (r.headers.get("location"), where)
    return r.json()  # type: ignore[no-any-return]


def test_every_201_carries_the_location_of_what_it_created(client: TestClient[Any]) -> None:
    c = client
    made = c.post("/v1/practices", json={"name": "P", "timezone": "Europe/Paris"})
    p = _created(made, f"/v1/practices/{made.json()['id']}")
    assert c.get(made.headers["location"]).json()["id"] == p["id"]
    pid = p["id"]
    pr = c.post(f"/v1/practices/{pid}/practitioners", json={"name": "Dr"})
    assert pr.headers["location"] == f"/v1/practitioners/{pr.json()['id']}"
    vt = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "V", "duration_minutes": 30})
    assert vt.headers["location"] == f"/v1/visit-types/{vt.json()['id']}"
    ctx = setup_practice(c)
    slot = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(2))[0]
    body = {"practitioner_id": slot["practitioner_id"], "visit_type_id": ctx["visit_types"][30], "start": slot["start"]}
    hold = c.post("/v1/holds", json=body, headers={"Idempotency-Key": "loc-1"})
    _created(hold, f"/v1/holds/{hold.json()['id']}")
    replay = c.post("/v1/holds", json=body, headers={"Idempotency-Key": "loc-1"})  # the first answer again
    assert replay.headers["idempotent-replayed"] == "true"
    _created(replay, hold.headers["location"])
    assert c.get(hold.headers["location"]).status_code == 200
    appt = c.post("/v1/appointments", json={"hold_id": hold.json()["id"], "patient": PATIENT})
    _created(appt, f"/v1/appointments/{appt.json()['id']}")
    assert c.get(appt.headers["location"]).json()["id"] == appt.json()["id"]
    day = next_weekday(3).isoformat()
    join = c.post(f"/v1/practices/{ctx['practice_id']}/waitlist", json={
        "visit_type_id": ctx["visit_types"][30], "from_date": day, "to_date": day, "patient": PATIENT})  # fmt: skip
    _created(join, f"/v1/waitlist/{join.json()['id']}")
    assert c.get(join.headers["location"]).json()["id"] == join.json()["id"]
    failed = c.post("/v1/holds", json=body)  # taken: a 409 names nothing
    assert failed.status_code == 409 and "location" not in failed.headers


def test_a_201_of_a_route_not_listed_is_located_under_its_path() -> None:
    from api.location import location

    assert location("/v1/practices/p1/api-keys", b'{"id":"k1","key":"s"}') == "/v1/practices/p1/api-keys/k1"
    assert location("/v1/appointments", b'{"series_id":"s1","appointments":[]}') == "/v1/series/s1"
    assert location("/v1/holds", b"not json") is None


def test_cors_is_off_by_default(client: TestClient[Any]) -> None:
    r = client.get("/healthz", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_the_configured_origins(make_client: Callable[..., TestClient[Any]]) -> None:
    c = make_client(cors_allow_origins=("https://app.example", "https://admin.example"))
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type, idempotency-key"}  # fmt: skip
    pre = c.options("/v1/holds", headers=ask)
    assert pre.status_code in (200, 204), pre.text
    assert pre.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "idempotency-key" in pre.headers["access-control-allow-headers"].lower()
    ctx = setup_practice(c)
    r = c.get(f"/v1/practices/{ctx['practice_id']}", headers={"Origin": "https://admin.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://admin.example"
    exposed = r.headers["access-control-expose-headers"].lower()
    assert all(h in exposed for h in ("etag", "location", "retry-after", "ratelimit-remaining"))
    other = c.get(f"/v1/practices/{ctx['practice_id']}", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    refused = c.options("/v1/holds", headers={**ask, "Origin": "https://evil.example"})
    assert refused.status_code >= 400 or "access-control-allow-origin" not in refused.headers


def test_booking_version_and_audit_verify_of_an_unknown_practice(redis_url: str, database_url: str) -> None:
    env = serve_env(redis_url, database_url)
    v = run_cli(env, "--version", timeout=60)
    assert v.returncode == 0 and v.stdout.strip() == f"booking {package_version()}", v
    nope = run_cli(env, "audit", "verify", "--practice", "nope", timeout=60)
    assert nope.returncode != 0, nope
    assert "no practice 'nope'" in nope.stderr, nope.stderr


def test_the_surface_settings_come_from_the_environment() -> None:
    from engine.settings import ConfigError, Settings

    s = Settings.from_env(
        {"CORS_ALLOW_ORIGINS": " https://a.example, ,https://b.example ", "REQUIRE_DURABLE_REDIS": "1"}
    )
    assert s.cors_allow_origins == ("https://a.example", "https://b.example") and s.require_durable_redis
    s = Settings.from_env({"LIMIT_APP_KEY_HOLDS_PER_MINUTE": "7", "LIMIT_APP_KEY_BOOKINGS_PER_MINUTE": "3"})
    assert (s.limit_app_key_holds_per_minute, s.limit_app_key_bookings_per_minute) == (7, 3)
    default = Settings.from_env({})
    assert default.cors_allow_origins == () and not default.require_durable_redis
    with pytest.raises(ConfigError, match="REQUIRE_DURABLE_REDIS"):
        Settings.from_env({"REQUIRE_DURABLE_REDIS": "maybe"})
