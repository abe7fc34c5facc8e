"""schemathesis against the app's own OpenAPI document: no server error, every answer matches the schema."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as st_checks

from tests.conftest import ADMIN, REDIS_URL, free_port, fresh_database

pytestmark = pytest.mark.integration
RURL = REDIS_URL.rsplit("/", 1)[0] + "/7"


def _serve() -> tuple[str, subprocess.Popen[bytes]]:
    import redis

    redis.Redis.from_url(RURL).flushdb()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": RURL,
        "DATABASE_URL": fresh_database("booking_fuzz"),
        "BOOKING_ADMIN_TOKEN": ADMIN,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


_URL, _PROC = _serve()  # the schema is read at collection time, so the server starts with the module
atexit.register(_PROC.kill)


@pytest.fixture(scope="module", autouse=True)
def _stop_server() -> Iterator[None]:
    yield
    _PROC.terminate()
    _PROC.wait(10)


schema = schemathesis.openapi.from_url(f"{_URL}/schema/openapi.json")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN}"},
        checks=[
            st_checks.not_a_server_error,
            st_checks.status_code_conformance,
            st_checks.content_type_conformance,
            st_checks.response_schema_conformance,
        ],
    )
