"""schemathesis against the app's own OpenAPI document: no server error, every answer matches the schema.

The document is the app's (built in process at collection time: schemathesis makes one test per operation, and
each pytest-xdist worker collects every module, so nothing may be started then); the tests run against a real
`booking serve` the module starts and stops, in its own process group, so nothing outlives the run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks as st_checks

from api.app import create_app
from tests.support.config import ADMIN, settings_for
from tests.support.databases import fresh_database
from tests.support.processes import Procs
from tests.support.servers import start_serve

pytestmark = pytest.mark.integration


def _serve(procs: Procs, redis_url: str) -> str:
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": fresh_database("booking_fuzz"),
        "BOOKING_ADMIN_TOKEN": ADMIN,
    }
    return start_serve(procs, env, workers=1, timeout=30).url


def _app_schema() -> schemathesis.schemas.BaseSchema:
    app = create_app(settings_for(None), background=False)
    return schemathesis.openapi.from_dict(app.openapi_schema.to_schema())


schema = _app_schema()


@pytest.fixture(scope="module")
def base_url(redis_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    procs = Procs(tmp_path_factory.mktemp("fuzz-server"))
    try:
        yield _serve(procs, redis_db)
    finally:
        procs.close()


# one test per operation, named by it: schemathesis's own parametrize gives all of them one test id on pytest 9.2,
# which pytest-xdist then runs once (the first operation only)
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_api_conforms_to_its_schema(operation: Any, data: st.DataObject, base_url: str) -> None:
    case = data.draw(operation.as_strategy())
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
