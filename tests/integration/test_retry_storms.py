"""One log line per retry storm, with a real dependency stopped (issue 21, item 7): a Redis of the test's own is
killed (by its pid) under an app whose hold sweeper retries every 50 ms and whose requests answer 503, then
started again on the same port. However many retries and 503s, each storm logs one line when it starts and one
when it recovers (under a minute: no summary)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.support.http import next_weekday, search, setup_practice
from tests.support.processes import Procs
from tests.support.servers import RedisServer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
STORMS = ("hold sweeper", "API answers 503: redis", "redis reads")  # the last at INFO


def _lines(caplog: pytest.LogCaptureFixture, since: int) -> list[str]:
    return [r.getMessage() for r in caplog.records[since:] if r.levelno >= logging.INFO]


def test_a_redis_outage_is_one_line_per_storm_and_one_per_recovery(
    make_client: Callable[..., TestClient[Any]], procs: Procs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="booking")
    rs = RedisServer(procs, tmp_path / "redis", aof=False)
    rs.start()
    c = make_client(redis_url=rs.url, background=True, sweep_interval_seconds=0.05)
    ctx = setup_practice(c)
    slot = search(c, ctx["practice_id"], ctx["visit_types"][30], next_weekday(3))[0]
    hold = {"practitioner_id": slot["practitioner_id"], "visit_type_id": ctx["visit_types"][30], "start": slot["start"]}
    before = len(caplog.records)

    rs.kill9()  # the dependency stops: the sweeper retries ~20 times a second, every hold answers 503
    refused = [c.post("/v1/holds", json=hold).status_code for _ in range(40)]
    assert refused == [503] * 40
    time.sleep(2)  # ~40 sweeps more, each failing
    during = _lines(caplog, before)
    for what in STORMS:
        started = [m for m in during if m.startswith(f"{what}: ") and "retrying, one summary a minute" in m]
        assert len(started) == 1, (what, during)
    assert not [m for m in during if "recovered" in m or "still failing" in m], during
    # every line of the outage is a storm's first line (nothing logged per retry, per read or per 503)
    assert len(during) == len(STORMS), during

    rs.start()  # the same port again: the storms end
    wait_until(lambda: all(any(m.startswith(f"{w}: recovered after") for m in _lines(caplog, before)) for w in STORMS),
               30, "the storms' recovery lines")  # fmt: skip
    assert c.post("/v1/holds", json=hold).status_code != 503  # (an empty Redis: the practice is gone, no AOF)
    time.sleep(0.5)
    after = _lines(caplog, before)
    for what in STORMS:
        recovered = [m for m in after if m.startswith(f"{what}: recovered after")]
        assert len(recovered) == 1, (what, after)
    api = next(m for m in after if m.startswith("API answers 503: redis: recovered after"))
    assert " 40 failures" in api, api  # every 503 counted
    sweeper = next(m for m in after if m.startswith("hold sweeper: recovered after"))
    assert int(sweeper.split(" failures")[0].rsplit(" ", 1)[1]) >= 10, sweeper  # many retries, two lines
