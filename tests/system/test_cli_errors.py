"""Issue 21: a `booking` command whose database or Redis cannot be used ended in a 114-line traceback (`role
"booking" does not exist`). Each now prints one line on stderr (which store, its URL without the password, why,
what to do) and exits 4. The CLI runs as a subprocess, as an operator runs it."""

from __future__ import annotations

import os

import pytest

from tests.support.config import PG_ADMIN_URL, REDIS_URL
from tests.support.databases import fresh_database, pg_url
from tests.support.servers import free_port, run_cli

pytestmark = [pytest.mark.integration]
PG_HOST = PG_ADMIN_URL.rsplit("@", 1)[1].split("/", 1)[0]


@pytest.fixture(scope="module")
def db() -> str:
    return fresh_database("booking_cli_errors")  # migrated: only Redis is missing


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "QUEUE_REDIS_URL")}
    return {**env, "BOOKING_ADMIN_TOKEN": "t", **extra}


def _one_line(done: object, command: str) -> str:
    """The command failed with exit 4 and said why in exactly one line, no traceback."""
    out, err, code = done.stdout, done.stderr, done.returncode  # type: ignore[attr-defined]
    assert code == 4, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"booking {command}: "), err
    return lines[0]


@pytest.mark.parametrize("command", [["migrate"], ["audit", "verify"], ["persister"]])
def test_a_missing_role_is_one_line_naming_the_url_and_what_to_run(command: list[str]) -> None:
    url = f"postgresql+psycopg://nobody_tour_21:s3cret@{PG_HOST}/booking"
    line = _one_line(run_cli(_env(DATABASE_URL=url, REDIS_URL=REDIS_URL), *command, timeout=60), command[0])
    assert f"postgresql+psycopg://nobody_tour_21:***@{PG_HOST}/booking" in line
    assert 'role "nobody_tour_21" does not exist' in line
    assert "createuser nobody_tour_21 && createdb -O nobody_tour_21 booking" in line
    assert "s3cret" not in line


def test_a_missing_database_is_one_line_saying_createdb() -> None:
    missing = pg_url("booking_cli_errors_absent")
    line = _one_line(run_cli(_env(DATABASE_URL=missing), "migrate", timeout=60), "migrate")
    assert 'database "booking_cli_errors_absent" does not exist' in line
    assert "createdb -O" in line and line.endswith("booking_cli_errors_absent) or correct DATABASE_URL")


def test_no_postgresql_listening_is_one_line() -> None:
    url = f"postgresql+psycopg://booking@127.0.0.1:{free_port()}/booking"
    line = _one_line(run_cli(_env(DATABASE_URL=url), "migrate", timeout=60), "migrate")
    assert url in line and "start PostgreSQL there or correct DATABASE_URL" in line


@pytest.mark.parametrize("command", [["persister"], ["reconcile"], ["worker"]])
def test_redis_unreachable_is_one_line_naming_it(command: list[str], db: str) -> None:
    dead = f"redis://:pw@127.0.0.1:{free_port()}/0"
    line = _one_line(run_cli(_env(DATABASE_URL=db, REDIS_URL=dead), *command, timeout=60), command[0])
    assert f"cannot reach Redis at {dead.replace(':pw@', ':***@')} (REDIS_URL)" in line
    assert "start it or correct REDIS_URL" in line and ":pw@" not in line


def test_the_worker_names_an_unreachable_queue_redis(db: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli(_env(DATABASE_URL=db, REDIS_URL=REDIS_URL, QUEUE_REDIS_URL=dead), "worker", timeout=60)
    assert f"cannot reach Redis at {dead} (QUEUE_REDIS_URL)" in _one_line(done, "worker")
