"""schemathesis against the app's own OpenAPI document: no server error, every answer matches the schema.

The document is read from a real `booking serve` at collection time (schemathesis makes one test per
operation); that server stops as soon as it is read, and the tests run against one the module starts and
stops. Both run in their own process groups, so nothing outlives the run, even `pytest --collect-only`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as st_checks

from tests.support.config import ADMIN, REDIS_URL
from tests.support.databases import fresh_database
from tests.support.processes import Procs
from tests.support.servers import start_serve

pytestmark = pytest.mark.integration
RURL = REDIS_URL.rsplit("/", 1)[0] + "/7"


def _serve(procs: Procs) -> str:
    redis.Redis.from_url(RURL).flushdb()
    env = {
        **os.environ,
        "REDIS_URL": RURL,
        "DATABASE_URL": fresh_database("booking_fuzz"),
        "BOOKING_ADMIN_TOKEN": ADMIN,
    }
    return start_serve(procs, env, workers=1, timeout=30).url


def _served_schema() -> schemathesis.schemas.BaseSchema:
    procs = Procs(Path(tempfile.mkdtemp(prefix="booking-fuzz-")))
    try:
        return schemathesis.openapi.from_url(f"{_serve(procs)}/schema/openapi.json")
    finally:
        procs.close()


schema = _served_schema()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    procs = Procs(tmp_path_factory.mktemp("fuzz-server"))
    try:
        yield _serve(procs)
    finally:
        procs.close()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case, base_url: str) -> None:
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {ADMIN}"},
        checks=[
            st_checks.not_a_server_error,
            st_checks.status_code_conformance,
            st_checks.content_type_conformance,
            st_checks.response_schema_conformance,
        ],
    )
