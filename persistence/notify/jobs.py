"""The rq job that sends one notification. It re-reads the appointment (or, for a waitlist offer, the entry and
its hold: persistence/notify/offers.py) just before sending and does nothing when it is stale (cancelled,
moved, another version, an offer no longer live); the row's status change is the claim that makes a second
worker or a retry a no-op."""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import msgspec
from sqlalchemy import select, update

from engine import appointments, keys, notices, offer_notices
from engine.settings import Settings
from persistence.notify import mailer, offers
from persistence.notify.names import names
from persistence.quarantine import clean
from persistence.tables import LIVE_NOTIFICATION_STATUSES, notifications

log = logging.getLogger("booking.notify")


# Why a notification whose DATA went out without an answer is not sent again (each goes out at most once).
UNCONFIRMED = "handed to the SMTP server without an answer: not resent (at most once); it may have been delivered"


class LeaseLost(Exception):
    """This attempt's claim was taken over (its lease ran out): it must not hand the message over."""


class Stale(Exception):
    """The appointment changed during the SMTP handshake: the message must not go out."""


class Context(msgspec.Struct):
    settings: Settings
    db: Any
    redis: Any
    scheduling: Any


_CONTEXT: list[Context] = []


def configure(ctx: Context) -> None:
    """Set by the worker that runs the jobs (one process may run several contexts in tests: the last wins)."""
    _CONTEXT[:] = [ctx]


def _context() -> Context:
    if not _CONTEXT:  # a plain `rq worker` process: build it from the environment
        from engine.redis import clients
        from persistence import runtime
        from persistence.notify.scheduling import Scheduling

        settings = Settings.from_env()
        redis = runtime.sync_redis(settings)
        configure(Context(settings, runtime.open_database(settings), redis, Scheduling(clients.queue_redis(settings))))
    return _CONTEXT[0]


def facts(ctx: Context, row: Any) -> tuple[notices.NoticeFacts | None, str]:
    """The live appointment as Redis holds it now, or None with the reason it is stale."""
    pid = row.practice_id
    found = appointments.from_hash(
        pid, row.appointment_id, ctx.redis.hgetall(keys.appointment(pid, row.appointment_id))
    )
    if found is None:
        return None, "appointment unknown to Redis"
    a, _ = found
    if a.version != row.version:
        return None, f"appointment is at version {a.version}, this notice is for {row.version}"
    wanted = "cancelled" if row.kind == "cancellation" else "booked"
    if a.status != wanted:
        return None, f"appointment is {a.status}"
    n = names(ctx.redis, pid, a.practitioner_id, a.visit_type_id)
    patient = a.patient
    return notices.NoticeFacts(
        notification_id=row.id,
        kind=row.kind,
        version=row.version,
        appointment_id=row.appointment_id,
        start=a.start,
        end=a.end,
        timezone=n.timezone,
        practice_name=n.practice,
        practitioner_name=n.practitioner,
        visit_type_name=n.visit_type,
        patient_name=patient.name,
        patient_email=patient.email,
        offset_s=row.offset_s,
        rescheduled=bool(row.rescheduled),
        language=patient.language or n.language,
        manage_url=manage_url(ctx.settings.manage_url_template, row.appointment_id),
    ), ""


def manage_url(template: str, appointment_id: str) -> str:
    """The app's page for an appointment (MANAGE_URL_TEMPLATE with the id, URL-quoted), '' when none is set."""
    return template.replace("{appointment_id}", quote(appointment_id, safe="")) if template else ""


def compose(ctx: Context, row: Any) -> tuple[EmailMessage | None, str]:
    """The message a row calls for, from what Redis holds now; None with the reason when it is stale."""
    if row.kind == offer_notices.KIND:
        return offers.compose(ctx.redis, row, ctx.settings.notify_from, ctx.settings.waitlist_accept_url)
    f, why = facts(ctx, row)
    return (None, why) if f is None else (notices.message(f, ctx.settings.notify_from), "")


def deliver(notification_id: str) -> str:
    ctx = _context()
    now = int(time.time() * 1000)
    t = notifications
    with ctx.db.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == notification_id)).one_or_none()
    if row is None or row.status not in LIVE_NOTIFICATION_STATUSES:
        return f"nothing to do ({row.status if row else 'unknown'})"
    if row.kind == "reminder" and row.due_at_ms > now + 1000:
        return "not due yet"  # an early duplicate job; the scheduled one will come
    try:
        msg, why = compose(ctx, row)
    except Exception as exc:  # noqa: BLE001 - odd stored data (a CR in an address...): final, never a retry loop
        why = clean(f"cannot compose the message: {type(exc).__name__}: {exc}", 500)
        with ctx.db.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.id == row.id, t.c.status.in_(LIVE_NOTIFICATION_STATUSES))
                .values(status="failed", attempts=t.c.attempts + 1, last_error=why)
            )
        log.error("notification %s failed: %s", row.id, why)
        return f"failed: {why}"
    with ctx.db.begin() as conn:
        if msg is None:
            conn.execute(
                update(t)
                .where(t.c.id == row.id, t.c.status.in_(LIVE_NOTIFICATION_STATUSES))
                .values(status="skipped", last_error=clean(why, 500))
            )
            log.info("notification %s skipped: %s", row.id, why)
            return f"skipped: {why}"
        if row.attempts >= ctx.settings.notify_max_attempts:  # attempts that died before an answer count too
            conn.execute(
                update(t)
                .where(t.c.id == row.id, t.c.status.in_(LIVE_NOTIFICATION_STATUSES))
                .values(
                    status="failed", last_error=clean(f"gave up after {row.attempts} attempts: {row.last_error}", 500)
                )
            )
            log.error("notification %s failed: gave up after %d attempts", row.id, row.attempts)
            return "failed: attempts used up"
        attempts = conn.execute(
            update(t)
            .where(t.c.id == row.id, t.c.status.in_(LIVE_NOTIFICATION_STATUSES))
            .values(
                status="sending",
                attempts=t.c.attempts + 1,
                lease_until_ms=now + int(ctx.settings.notify_lease_seconds * 1000),
            )
            .returning(t.c.attempts)
        ).scalar_one_or_none()
    if attempts is None:
        return "claimed by another worker"
    mine = (t.c.id == row.id, t.c.attempts == attempts)

    def handing() -> None:
        """The message is next: from here the server may hold it, so a crash must not resend it. The appointment
        is read once more first (the handshake may have taken seconds: a cancel meanwhile stops it)."""
        again, why = compose(ctx, row)
        if again is None:
            raise Stale(why or "stale")
        with ctx.db.begin() as conn:
            if conn.execute(update(t).where(*mine, t.c.status == "sending").values(status="handed")).rowcount != 1:
                raise LeaseLost(row.id)

    try:
        how = mailer.send(msg, ctx.settings.smtp_url, handing)
    except LeaseLost:
        log.warning("notification %s: lease ran out before the message went out; another attempt sends it", row.id)
        return "lease lost"
    except Stale as exc:
        with ctx.db.begin() as conn:
            conn.execute(
                update(t)
                .where(*mine, t.c.status == "sending")
                .values(status="skipped", last_error=clean(str(exc), 500))
            )
        log.info("notification %s skipped just before sending: %s", row.id, exc)
        return f"skipped: {exc}"
    except mailer.DeliveryError as exc:
        if exc.unconfirmed:
            with ctx.db.begin() as conn:
                conn.execute(
                    update(t)
                    .where(*mine, t.c.status == "handed")
                    .values(status="failed", last_error=clean(f"{UNCONFIRMED}: {exc}", 500))
                )
            log.error("notification %s: %s (%s)", row.id, UNCONFIRMED, exc)
            return "failed: unconfirmed"
        final = attempts >= ctx.settings.notify_max_attempts
        due = now + int(ctx.settings.notify_retry_base_seconds * 1000 * 2 ** (attempts - 1))
        with ctx.db.begin() as conn:
            conn.execute(
                update(t)
                .where(*mine, t.c.status.in_(("sending", "handed")))
                .values(
                    status="failed" if final else "retrying",
                    last_error=clean(str(exc), 500),  # an SMTP reply may echo odd text (a NUL PostgreSQL refuses)
                    due_at_ms=row.due_at_ms if final else due,
                    enqueued_at_ms=None if final else now,
                )
            )
        if not final:
            ctx.scheduling.enqueue(row.id, due)
        log.warning(
            "notification %s attempt %d failed (%s)%s",
            row.id,
            attempts,
            exc,
            "; giving up" if final else "; will retry",
        )
        return "failed" if final else "retrying"
    with ctx.db.begin() as conn:
        conn.execute(
            update(t)
            # 'failed' too: a repair that found this attempt's lease run out while the server was answering
            .where(*mine, t.c.status.in_(("sending", "handed", "failed")))
            .values(status="sent", sent_at_ms=int(time.time() * 1000), last_error=None if how == "smtp" else "logged")
        )
    return "sent"
