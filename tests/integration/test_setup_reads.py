"""Every 201 carries a Location a client can follow (API.md, "Operations"): a practitioner's and a visit type's
point at GET routes that answer the same body the 201 did, readable as the practice's lists are (no credential
needed), 404 for an unknown id, 401 for an unknown token."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_the_location_of_a_new_practitioner_and_visit_type_answers_what_the_201_did(client: Any) -> None:
    practice = client.post("/v1/practices", json={"name": "P", "timezone": "Europe/Paris"}).json()
    pid = practice["id"]
    made = client.post(f"/v1/practices/{pid}/practitioners", json={"name": "Dr A"})
    assert made.status_code == 201, made.text
    got = client.get(made.headers["location"], headers={"Authorization": ""})
    assert got.status_code == 200, got.text
    assert got.json() == made.json() == {"id": made.json()["id"], "practice_id": pid, "name": "Dr A"}
    vt = client.post(f"/v1/practices/{pid}/visit-types", json={"name": "check", "duration_minutes": 20})
    assert vt.status_code == 201, vt.text
    got = client.get(vt.headers["location"], headers={"Authorization": ""})
    assert got.status_code == 200, got.text
    assert got.json() == vt.json() and got.json()["duration_minutes"] == 20


@pytest.mark.parametrize("path", ["/v1/practitioners/{x}", "/v1/visit-types/{x}"])
def test_unknown_ids_are_404_and_unknown_tokens_401(client: Any, path: str) -> None:
    pid = client.post("/v1/practices", json={"name": "P", "timezone": "Europe/Paris"}).json()["id"]
    known = client.post(f"/v1/practices/{pid}/practitioners", json={"name": "Dr A"}).json()["id"]
    vt = client.post(f"/v1/practices/{pid}/visit-types", json={"name": "c", "duration_minutes": 20}).json()["id"]
    real = known if "practitioners" in path else vt
    for ident in ("nope", real[:-3] + "zzz"):
        r = client.get(path.format(x=ident))
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    r = client.get(path.format(x=real), headers={"Authorization": "Bearer not-a-key"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized", r.text
