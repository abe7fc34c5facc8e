"""How long after a booking's 201 its confirmation mail arrives (issue 20, item 2: within 2 s with redis-py 8.2 and
rq 3.0). A study, not part of ``booking bench``: it runs the API in process, the persister and the notification
worker in threads, and a real SMTP server (aiosmtpd), against the Redis and PostgreSQL the tests use.

    .venv/bin/python -m benchmarks.studies.confirmation_latency [--bookings 30] [--redis-url redis://127.0.0.1:6379/12]

Prints each latency's percentiles (the practice's first booking apart) and the redis-py and rq releases.

Conclusion (2026-12-06, redis-py 8.2.0, rq 3.0.0, the locked releases): 40 confirmations arrived 0.027-0.066 s
after their 201; a new practice's first one 2.06 s (the worker discovers new streams every 2 s). Recorded in
docs/operations.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import threading
import time
from importlib.metadata import version

from litestar.testing import TestClient

from api.app import create_app
from engine.redis import clients
from engine.settings import parse_offsets
from persistence.db import make_engine
from persistence.notify.worker import NotificationWorker
from persistence.persister import Persister
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database
from tests.support.http import search, setup_practice
from tests.support.smtp import SmtpServer


def measure(bookings: int, redis_url: str) -> list[float]:
    url = fresh_database("booking_latency_study")
    db = make_engine(url)
    latencies: list[float] = []
    with SmtpServer() as smtp:
        s = settings_for(redis_url, database_url=url, smtp_url=smtp.url, reminder_offsets=parse_offsets("24h"))
        r = clients.sync_redis(s)
        r.flushdb()
        worker = NotificationWorker(s, r, db, queue=clients.queue_redis(s))
        persister = Persister(r, db, consumer="latency-study")
        stop = threading.Event()
        pt = threading.Thread(target=persister.run, args=(stop,), daemon=True)
        with TestClient(create_app(s)) as c:
            c.headers.update(AUTH)
            pt.start()
            worker.start()
            try:
                ctx = setup_practice(c, tz="Europe/Paris", durations=(30,), horizon_days=60)
                pr, vt = ctx["practitioners"][0], ctx["visit_types"][30]
                day = dt.date.today() + dt.timedelta(days=2)
                slots = []
                while len(slots) < bookings:  # slots that do not overlap one another
                    for slot in search(c, ctx["practice_id"], vt, day, practitioner_id=pr):
                        if not slots or slot["start"] >= slots[-1]["end"]:
                            slots.append(slot)
                    day += dt.timedelta(days=1)
                for slot in slots[:bookings]:
                    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": slot["start"]})
                    assert h.status_code == 201, h.text
                    body = {"hold_id": h.json()["id"], "patient": {"name": "Ada", "email": "ada@example.org"}}
                    b = c.post("/v1/appointments", json=body)
                    acked = time.perf_counter()
                    nid = f"{b.json()['id']}:confirmation:0:1"
                    while nid not in smtp.inbox.by_notification():
                        if time.perf_counter() - acked > 60:
                            raise SystemExit(f"no confirmation for {nid} within 60 s")
                        time.sleep(0.002)
                    latencies.append(time.perf_counter() - acked)
            finally:
                worker.close()
                stop.set()
                pt.join(10)
        r.close()
    db.dispose()
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bookings", type=int, default=30)
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="a database this study may flush")
    a = ap.parse_args()
    first, *each = measure(a.bookings + 1, a.redis_url)
    print("in booking order (s):", " ".join(f"{x:.3f}" for x in each))
    print(
        f"the practice's first booking, made just after the practice was created: {first:.3f} s (its stream is "
        "found by the worker's next look at the list of practices, every 2 s, then read with a 1 s blocking read)"
    )
    got = sorted(each)
    q = statistics.quantiles(got, n=20)
    print(
        f"redis-py {version('redis')}, rq {version('rq')}: {len(got)} confirmations, seconds after the 201: "
        f"min {got[0]:.3f}  p50 {statistics.median(got):.3f}  p95 {q[18]:.3f}  max {got[-1]:.3f}"
    )


if __name__ == "__main__":
    main()
