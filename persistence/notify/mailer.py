"""Delivery: SMTP when SMTP_URL is set (with a timeout), otherwise recorded and logged.

``handing`` runs just before the message's DATA goes out, after the server accepted the sender and the
recipients: up to that point nothing can have been delivered, so a worker that dies there is safely resent;
after it the server may hold the message, and the notification is not resent (persistence/notify/worker.py)."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("booking.notify")
TIMEOUT_S = 10.0


class DeliveryError(Exception):
    """The SMTP server refused or could not be reached (retried with backoff). ``unconfirmed``: the message's
    DATA went out and no answer came back (a dropped connection, a timeout), so the server may have it."""

    def __init__(self, message: str, *, unconfirmed: bool = False) -> None:
        super().__init__(message)
        self.unconfirmed = unconfirmed


def _nothing() -> None:
    return None


class _Handing:
    """smtplib's public ``data``, with ``handing`` called first and the answer recorded."""

    handing: Callable[[], None] = staticmethod(_nothing)
    handed = False
    accepted = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.handing()
        self.handed = True
        code, reply = super().data(msg)  # type: ignore[misc]
        self.accepted = code == 250
        return code, reply


class _SMTP(_Handing, smtplib.SMTP):
    pass


class _SMTPS(_Handing, smtplib.SMTP_SSL):
    pass


def send(msg: EmailMessage, smtp_url: str | None, handing: Callable[[], None] = _nothing) -> str:
    """Deliver; returns how ('smtp' or 'log'). Raises DeliveryError on failure; ``handing`` runs before the
    DATA (and not at all when the server refused the sender or every recipient)."""
    if not smtp_url:
        handing()
        log.info(
            "notification %s (no SMTP_URL: recorded, not mailed): %s", msg["X-Booking-Notification"], msg["Subject"]
        )
        return "log"
    url = urlsplit(smtp_url)
    cls = _SMTPS if url.scheme == "smtps" else _SMTP
    smtp: _SMTP | _SMTPS | None = None
    try:
        with cls(url.hostname or "127.0.0.1", url.port or 25, timeout=TIMEOUT_S) as smtp:
            smtp.handing = handing
            if url.username:
                smtp.login(url.username, url.password or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        if smtp is not None and smtp.accepted:
            return "smtp"  # the server took it; only the goodbye failed
        answered = isinstance(exc, smtplib.SMTPResponseException)
        unconfirmed = smtp is not None and smtp.handed and not answered
        raise DeliveryError(f"{type(exc).__name__}: {exc}", unconfirmed=unconfirmed) from exc
    return "smtp"
