"""An operator with redis-cli reads nothing of a patient in the idempotency records (issue: privacy), while an
exact replay still answers the first answer byte for byte."""

from __future__ import annotations

from typing import Any

import pytest

from engine import idempotency
from tests.support.http import next_weekday, search, setup_practice

pytestmark = pytest.mark.integration
CLIENT_KEY = "client-secret-idempotency-key-4711"
PATIENT = {"name": "Grace Hopper", "email": "grace.hopper@example.org", "phone": "+1 555 0100"}


def test_the_stored_answer_is_sealed_and_the_key_never_appears(client: Any, rsync: Any) -> None:
    ctx = setup_practice(client)
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    slot = search(client, pid, vt, next_weekday(2))[1]
    held = client.post(
        "/v1/holds",
        json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]},
        headers={"Idempotency-Key": CLIENT_KEY + "-h"},
    )
    body = {"hold_id": held.json()["id"], "patient": PATIENT}
    first = client.post("/v1/appointments", json=body, headers={"Idempotency-Key": CLIENT_KEY})
    again = client.post("/v1/appointments", json=body, headers={"Idempotency-Key": CLIENT_KEY})
    assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    token = first.json()["manage_token"]
    stored = {k: rsync.get(k) for k in rsync.scan_iter(match=f"bk:v1:{{p:{pid}}}:idem:*")}
    assert len(stored) == 2  # the hold's and the booking's
    for name, value in stored.items():
        assert CLIENT_KEY.encode() not in name
        for secret in (token, PATIENT["name"], PATIENT["email"], PATIENT["phone"], "Grace", "hopper"):
            assert secret.encode() not in value, (name, secret)


def test_a_sealed_answer_opens_only_with_its_own_key() -> None:
    a, b = idempotency.derive("key-a", b"{}"), idempotency.derive("key-b", b"{}")
    sealed = idempotency.seal(a, b'{"manage_token":"t"}')
    assert idempotency.unseal(a, sealed) == b'{"manage_token":"t"}'
    with pytest.raises(ValueError):
        idempotency.unseal(b, sealed)
    assert a.fingerprint != idempotency.derive("key-a", b"{ }").fingerprint  # the body still counts
    assert a.ref != b.ref and "key-a" not in a.ref
