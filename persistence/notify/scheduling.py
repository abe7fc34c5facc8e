"""rq queue and rq-scheduler: how a notification row becomes a job, now or at its due time."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from typing import Any

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq_scheduler import Scheduler

log = logging.getLogger("booking.notify")
QUEUE = "notifications"


def job_id(notification_id: str) -> str:
    return "notif-" + hashlib.sha1(notification_id.encode()).hexdigest()[:24]


class Scheduling:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.queue = Queue(QUEUE, connection=redis)
        self.scheduler = Scheduler(queue=self.queue, connection=redis)

    def enqueue(self, notification_id: str, due_ms: int) -> None:
        from persistence.notify.jobs import deliver

        jid = job_id(notification_id)
        if due_ms <= time.time() * 1000 + 250:
            self.queue.enqueue(deliver, notification_id, job_id=jid, result_ttl=600, failure_ttl=86400)
        else:
            when = dt.datetime.fromtimestamp(due_ms / 1000, dt.timezone.utc)
            self.scheduler.enqueue_at(when, deliver, notification_id, job_id=jid)

    def cancel(self, notification_id: str) -> None:
        """Drop the scheduled or queued job (the job would also see the row is no longer due and do nothing)."""
        jid = job_id(notification_id)
        self.scheduler.cancel(jid)
        try:
            Job.fetch(jid, connection=self.redis).cancel()
        except NoSuchJobError:
            pass
        except Exception as exc:  # noqa: BLE001 - cancelling is best effort; the job re-checks anyway
            log.debug("cancel %s: %s", jid, exc)

    def move_due(self) -> None:
        """rq-scheduler's loop body: move jobs whose time has come onto the queue."""
        self.scheduler.enqueue_jobs()
