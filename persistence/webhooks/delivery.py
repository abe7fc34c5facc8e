"""Delivering webhooks: a thread of the notification worker (``tick``) starts, for each active endpoint with a
due delivery, one drain on a small bounded pool. A drain sends that endpoint's due deliveries one at a time in
stream order, never an event of an appointment (or waitlist entry) before the earlier one of the same subject
succeeded; so one slow or dead receiver holds back only itself. Each attempt is recorded (status, latency,
error); a failure (any non-2xx, a refused target, no answer within WEBHOOK_TIMEOUT_SECONDS) is retried after
WEBHOOK_BACKOFF_BASE_SECONDS, doubled each time up to WEBHOOK_BACKOFF_MAX_SECONDS; a delivery still failing
WEBHOOK_RETRY_WINDOW_SECONDS after its first try disables its endpoint, with the last error (its deliveries
stay pending: a replay sends them). A lease on the endpoint row keeps two workers from draining one endpoint at
once (order)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import Engine

from engine.settings import Settings
from engine.storm import Storm
from persistence.tables import webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events
from persistence.webhooks import events, signing, targets

log = logging.getLogger("booking.webhooks")
E, V, D, A = webhook_endpoints, webhook_events, webhook_deliveries, webhook_attempts
BATCH = 50


def backoff_ms(settings: Settings, attempts: int) -> int:
    """The delay before the next try after ``attempts`` failed ones."""
    base, cap = settings.webhook_backoff_base_seconds, settings.webhook_backoff_max_seconds
    return int(min(cap, base * 2 ** max(0, min(attempts - 1, 40))) * 1000)


class Dispatcher:
    def __init__(self, settings: Settings, db: Engine, *, owner: str | None = None) -> None:
        self.settings, self.db = settings, db
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{id(self) % 100000}"
        self.pool = ThreadPoolExecutor(max_workers=settings.webhook_concurrency, thread_name_prefix="webhook")
        self.http = httpx.Client(
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
            headers={"user-agent": "booking-engine-webhooks/1"},
        )
        self.lease_ms = int(max(60.0, 3 * settings.webhook_timeout_seconds) * 1000)
        self.busy: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.storm = Storm("webhook deliverer", log)  # its database outages: one line each (engine/storm.py)

    # ------------------------------------------------------------------------------------------ scheduling
    def tick(self) -> int:
        """Start a drain for each endpoint with a due delivery that has none running; returns how many."""
        now = int(time.time() * 1000)
        q = (
            select(D.c.endpoint_id)
            .distinct()
            .join(E, E.c.id == D.c.endpoint_id)
            .where(D.c.status == "pending", D.c.next_at_ms <= now, E.c.status == "active")
        )
        with self.db.connect() as c:
            due = list(c.execute(q).scalars())
        started = 0
        for endpoint_id in due:
            with self.lock:
                if endpoint_id in self.busy or self.stopping.is_set():
                    continue
                self.busy.add(endpoint_id)
            self.pool.submit(self._drain, endpoint_id)
            started += 1
        return started

    def close(self) -> None:
        self.stopping.set()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.http.close()

    # ------------------------------------------------------------------------------------------ one endpoint
    def _lease(self, endpoint_id: str, release: bool = False) -> bool:
        now = int(time.time() * 1000)
        with self.db.begin() as c:
            if release:
                c.execute(
                    update(E).where(E.c.id == endpoint_id, E.c.lease_owner == self.owner).values(lease_until_ms=None)
                )
                return True
            return bool(
                c.execute(
                    update(E)
                    .where(
                        E.c.id == endpoint_id,
                        E.c.status == "active",
                        or_(E.c.lease_until_ms.is_(None), E.c.lease_until_ms < now, E.c.lease_owner == self.owner),
                    )
                    .values(lease_owner=self.owner, lease_until_ms=now + self.lease_ms)
                ).rowcount
            )

    def _drain(self, endpoint_id: str) -> None:
        try:
            if self._lease(endpoint_id):
                try:
                    self._send_due(endpoint_id)
                finally:
                    self._lease(endpoint_id, release=True)
            self.storm.ok()
        except Exception as exc:  # noqa: BLE001 - a database outage: the next tick tries again
            self.storm.failed(f"endpoint {endpoint_id}: {type(exc).__name__}: {exc}")
        finally:
            with self.lock:
                self.busy.discard(endpoint_id)

    def _due(self, endpoint_id: str, now: int) -> list[Any]:
        """Due deliveries of the endpoint whose subject has no earlier delivery still pending, in stream order."""
        d2 = D.alias("earlier")
        earlier = exists().where(
            d2.c.endpoint_id == D.c.endpoint_id,
            d2.c.subject_id == D.c.subject_id,
            d2.c.status == "pending",
            or_(d2.c.ord_ms < D.c.ord_ms, and_(d2.c.ord_ms == D.c.ord_ms, d2.c.ord_n < D.c.ord_n)),
        )
        q = (
            select(D.c.event_id, D.c.subject_id, D.c.attempts, D.c.window_start_ms, V.c.type, V.c.data, V.c.patient)
            .join(V, V.c.id == D.c.event_id)
            .where(D.c.endpoint_id == endpoint_id, D.c.status == "pending", D.c.next_at_ms <= now, ~earlier)
            .order_by(D.c.ord_ms, D.c.ord_n)
            .limit(BATCH)
        )
        with self.db.connect() as c:
            return list(c.execute(q).all())

    def _send_due(self, endpoint_id: str) -> None:
        with self.db.connect() as c:
            ep = c.execute(select(E).where(E.c.id == endpoint_id)).mappings().one_or_none()
        if ep is None or ep["status"] != "active":
            return
        failed: set[str] = set()  # subjects whose next event must wait for this one's retry
        while not self.stopping.is_set():
            batch = [d for d in self._due(endpoint_id, int(time.time() * 1000)) if d.subject_id not in failed]
            if not batch:
                return
            for d in batch:
                if self.stopping.is_set():
                    return
                if d.subject_id in failed:
                    continue
                ok = self._attempt(ep, d)
                if ok is None:  # the endpoint was disabled (or deleted) meanwhile
                    return
                if not ok:
                    failed.add(d.subject_id)
                self._lease(endpoint_id)  # renewed after each attempt

    def _post(self, ep: Any, d: Any) -> tuple[int | None, str | None]:
        """(HTTP status, error): error None when the receiver answered 2xx."""
        try:
            if not self.settings.webhook_allow_private:
                targets.check(ep["url"], allow_private=False)
            body = events.body(d.data, d.patient, bool(ep["include_patient"]))
            headers = signing.headers(ep["secret"], d.event_id, int(time.time()), body)
            with self.http.stream("POST", ep["url"], content=body, headers=headers) as r:
                code = r.status_code
        except targets.TargetError as exc:
            return None, f"target refused: {exc.detail}"
        except httpx.TimeoutException:
            return None, f"no answer within {self.settings.webhook_timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        return code, None if 200 <= code < 300 else f"HTTP {code}"

    def _attempt(self, ep: Any, d: Any) -> bool | None:
        """One attempt, recorded; True on success, False on a failure to retry, None when the endpoint is no
        longer active (or this failure disabled it)."""
        started = time.perf_counter()
        code, error = self._post(ep, d)
        latency = int((time.perf_counter() - started) * 1000)
        now = int(time.time() * 1000)
        attempt = d.attempts + 1
        key = and_(D.c.endpoint_id == ep["id"], D.c.event_id == d.event_id, D.c.status == "pending")
        with self.db.begin() as c:
            c.execute(
                A.insert().values(
                    endpoint_id=ep["id"],
                    event_id=d.event_id,
                    type=d.type,
                    attempt=attempt,
                    status_code=code,
                    latency_ms=latency,
                    error=error,
                    at_ms=now,
                )
            )
            if error is None:
                c.execute(
                    update(D)
                    .where(key)
                    .values(status="delivered", attempts=attempt, delivered_at_ms=now, last_error=None)
                )
                return True
            c.execute(
                update(D)
                .where(key)
                .values(attempts=attempt, last_error=error, next_at_ms=now + backoff_ms(self.settings, attempt))
            )
            if now - d.window_start_ms >= self.settings.webhook_retry_window_seconds * 1000:
                why = f"{error} (event {d.event_id} undelivered after {attempt} attempts)"
                c.execute(
                    update(E)
                    .where(E.c.id == ep["id"], E.c.status == "active")
                    .values(status="disabled", last_error=why, disabled_at_ms=now)
                )
                log.warning("webhook endpoint %s disabled: %s", ep["id"], why)
                return None
            c.execute(update(E).where(E.c.id == ep["id"]).values(last_error=error))
            active = c.execute(select(E.c.status).where(E.c.id == ep["id"])).scalar_one_or_none()
        log.info("webhook %s to %s failed (attempt %d): %s", d.event_id, ep["id"], attempt, error)
        return False if active == "active" else None
