"""A practice's zone is a real IANA zone a place can be in (issue 22, "also seen"): ``localtime`` (whatever the
server is set to), ``Factory``, ``posixrules`` and the sign-only aliases of Etc/GMT are 422 ``unknown_timezone`` and
store nothing; the OpenAPI enum lists no two names a client generator would turn into one key."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.app import create_app
from engine import keys, timeutil
from tests.support.config import settings_for

pytestmark = pytest.mark.integration
REFUSED = ["localtime", "Factory", "posixrules", "GMT0", "GMT+0", "GMT-0", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0"]


@pytest.mark.parametrize("name", REFUSED)
def test_a_zone_no_practice_is_in_is_refused_and_stores_nothing(client: Any, rsync: Any, name: str) -> None:
    before = rsync.scard(keys.PRACTICES)
    r = client.post("/v1/practices", json={"name": "Nowhere", "timezone": name})
    assert r.status_code == 422 and r.json()["code"] == "unknown_timezone", r.text
    assert rsync.scard(keys.PRACTICES) == before


@pytest.mark.parametrize("name", ["UTC", "Etc/GMT", "GMT", "Etc/GMT+1", "Etc/GMT-14", "Europe/Paris"])
def test_real_zones_are_still_taken(client: Any, name: str) -> None:
    r = client.post("/v1/practices", json={"name": "Somewhere", "timezone": name})
    assert r.status_code == 201 and r.json()["timezone"] == name, r.text


def test_the_documents_zone_enum_has_no_clashing_names() -> None:
    doc = create_app(settings_for(None), background=False).openapi_schema.to_schema()
    enum = doc["components"]["schemas"]["PracticeIn"]["properties"]["timezone"]["enum"]
    assert not set(enum) & set(REFUSED)
    # a generator keeps letters, digits and the delimiters ("-", "_", ".", "/") of a name, upper-cased: distinct
    kept = {re.sub(r"[^\w\-./]", "", name).upper() for name in enum}
    assert len(kept) == len(enum)
    assert all(timeutil.zone(name) for name in enum)
