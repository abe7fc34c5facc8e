"""/metrics of `booking serve --workers 2` (issue 11 item 13): counters add up every worker's requests whichever
worker answers the scrape, and the operator's gauges (live holds, persister lag per practice shard, outbox and
queue depth, Redis round trips) are there. The server, its Redis and its database are the test's own; the
server runs in its own process group, stopped in teardown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.gauges import shard_of
from tests.support.config import AUTH
from tests.support.databases import fresh_database
from tests.support.http import next_weekday, search, setup_practice
from tests.support.processes import Procs
from tests.support.servers import RedisServer, serve_env, start_serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    procs = Procs(tmp_path)
    try:
        rs = RedisServer(procs, tmp_path / "redis", aof=False)
        rs.start()
        yield start_serve(procs, serve_env(rs.url, fresh_database("booking_metrics"))).url
    finally:
        procs.close()


def scrape(url: str) -> dict[str, float]:
    """One scrape on a new connection (so any worker may answer): 'name{labels}' -> value."""
    body = httpx.get(f"{url}/metrics", timeout=10, headers={"Connection": "close"}).text
    out = {}
    for line in body.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def test_metrics_add_up_every_workers_requests_and_show_the_operators_gauges(serve: str) -> None:
    url = serve
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as c:
        ctx = setup_practice(c)
        pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
        slots = search(c, pid, vt, next_weekday(2))[::4][:3]  # an hour apart: no two overlap
        holds = [
            c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": s["start"]}) for s in slots
        ]
        assert [h.status_code for h in holds] == [201] * 3
        assert c.delete(f"/v1/holds/{holds[0].json()['id']}").status_code == 204

    n = 40
    for _ in range(n):  # each on a new connection: the two workers share them out
        assert httpx.get(f"{url}/healthz", headers={"Connection": "close"}).status_code == 200

    healthz = 'booking_http_requests_total{method="GET",route="/healthz",status="200"}'
    for _ in range(8):
        m = scrape(url)
        assert m.get(healthz) == n, m.get(healthz)
        assert m["booking_live_holds"] == 2  # three placed, one released
        # no persister runs here: every event waits, all of them in the practice's shard
        behind = m["booking_persister_lag_events"]
        assert behind > 0
        assert m[f'booking_persister_shard_lag_events{{shard="{shard_of(pid)}"}}'] == behind
        assert sum(v for k, v in m.items() if k.startswith("booking_persister_shard_lag_events{")) == behind
        assert m["booking_outbox_lag_events"] == behind  # nor a notification worker
        assert m['booking_notification_jobs{state="queued"}'] == 0
        assert m["booking_redis_ping_seconds"] > 0
        assert m['booking_redis_command_duration_seconds_count{command="EVALSHA"}'] > 0
        for script in ("schedule", "search", "hold", "release"):  # by script name, not EVALSHA
            assert m[f'booking_script_duration_seconds_count{{script="{script}"}}'] > 0, script
