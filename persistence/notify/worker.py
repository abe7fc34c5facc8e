"""`booking worker`: the outbox consumer, rq-scheduler, a repair loop, an rq worker and the webhook deliveries,
as threads of one process (the embedded mode runs the same threads inside `booking serve`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty
from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine

from engine.settings import Settings
from engine.storm import Storm
from persistence.notify import jobs
from persistence.notify.outbox import Outbox
from persistence.notify.scheduling import Scheduling
from persistence.tables import LIVE_NOTIFICATION_STATUSES, notifications
from persistence.webhooks.delivery import Dispatcher

log = logging.getLogger("booking.notify")


class ThreadWorker(SimpleWorker):
    """An rq SimpleWorker that can run outside the main thread (no signal handlers, timer-based timeouts).

    It does not subscribe to rq's per-worker command channel (rq's ``send_kill_horse_command`` and friends:
    nothing here sends them). Each burst would otherwise start a pub/sub listener thread and join it at
    teardown; with redis-py 8.2 that join waits out the listener's 60 s poll, and a worker that bursts every
    0.1 s sent confirmations up to a minute late. ``subscribe``/``unsubscribe`` are rq's public hooks for
    that channel; without a subscription there is no thread to start or join."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def repair(db: Engine, scheduling: Scheduling, now_ms: int | None = None, grace_ms: int = 5000) -> int:
    """Re-enqueue what a crash may have lost: due rows whose job never ran, and rows left 'sending' by a
    worker that died before the message's DATA (their lease ran out). A row left 'handed' (the DATA went out,
    no answer came back) becomes 'failed', never resent: the row claim keeps every message to one send."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    t = notifications
    with db.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.status == "sending", t.c.lease_until_ms < now)  # the DATA never went out: safe to resend
            .values(status="retrying", last_error="worker died while sending; resent", enqueued_at_ms=None)
        )
        conn.execute(
            update(t)
            .where(t.c.status == "handed", t.c.lease_until_ms < now)  # the server may hold it: at most once
            .values(status="failed", last_error=f"worker died: {jobs.UNCONFIRMED}")
        )
        due = conn.execute(
            select(t.c.id, t.c.due_at_ms).where(
                t.c.status.in_(LIVE_NOTIFICATION_STATUSES),
                t.c.due_at_ms <= now - grace_ms,
                or_(t.c.enqueued_at_ms.is_(None), t.c.enqueued_at_ms < now - 30_000),
            )
        ).all()
        for nid, due_ms in due:
            scheduling.enqueue(nid, int(due_ms))
        if due:
            conn.execute(update(t).where(t.c.id.in_([d[0] for d in due])).values(enqueued_at_ms=now))
    return len(due)


class NotificationWorker:
    """``redis`` holds the event streams and appointments (a cluster client with REDIS_CLUSTER=1); ``queue`` is
    rq's standalone Redis (the same client when not given)."""

    def __init__(self, settings: Settings, redis: Any, db: Engine, *, poll: bool = False, queue: Any = None) -> None:
        self.settings, self.redis, self.db = settings, redis, db
        self.queue_redis = redis if queue is None else queue
        self.scheduling = Scheduling(self.queue_redis)
        jobs.configure(jobs.Context(settings, db, redis, self.scheduling))
        self.outbox = Outbox(redis, db, settings, self.scheduling, block_ms=0 if poll else 1000)
        self.webhooks = Dispatcher(settings, db)  # persistence/webhooks/delivery.py
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def _loop(self, name: str, body: Callable[[], Any], pause: float) -> None:
        backoff = pause
        storm = Storm(f"notification worker {name}", log)  # one line per outage, not per retry (engine/storm.py)
        while not self.stop.is_set():
            try:
                done = body()
                backoff = pause
                storm.ok()
                if not done:
                    self.stop.wait(pause)
            except Exception as exc:  # noqa: BLE001 - a dependency outage must not kill the worker
                backoff = min(5.0, backoff * 2)
                storm.failed(exc)
                self.stop.wait(backoff)

    def _work(self) -> bool:
        w = ThreadWorker([self.scheduling.queue], connection=self.queue_redis)
        return bool(w.work(burst=True, logging_level="WARNING", max_jobs=200))

    def start(self) -> None:
        for name, body, pause in (
            ("outbox", lambda: self.outbox.step(block=not self.outbox.block_ms == 0), 0.05),
            ("scheduler", lambda: self.scheduling.move_due(), 0.25),
            ("repair", lambda: repair(self.db, self.scheduling), 2.0),
            ("jobs", self._work, 0.1),
            ("webhooks", self.webhooks.tick, 0.2),
        ):
            t = threading.Thread(target=self._loop, args=(name, body, pause), name=f"notify-{name}", daemon=True)
            t.start()
            self.threads.append(t)
        log.info("notification worker started (SMTP %s)", "on" if self.settings.smtp_url else "off: logged only")

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        self.webhooks.close()
