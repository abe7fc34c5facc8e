"""Delivery: SMTP when SMTP_URL is set (with a timeout), otherwise recorded and logged."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit

log = logging.getLogger("booking.notify")
TIMEOUT_S = 10.0


class DeliveryError(Exception):
    """The SMTP server refused or could not be reached (retried with backoff)."""


def send(msg: EmailMessage, smtp_url: str | None) -> str:
    """Deliver; returns how ('smtp' or 'log'). Raises DeliveryError on failure."""
    if not smtp_url:
        log.info(
            "notification %s (no SMTP_URL: recorded, not mailed): %s", msg["X-Booking-Notification"], msg["Subject"]
        )
        return "log"
    url = urlsplit(smtp_url)
    try:
        cls = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        with cls(url.hostname or "127.0.0.1", url.port or 25, timeout=TIMEOUT_S) as smtp:
            if url.username:
                smtp.login(url.username, url.password or "")
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    return "smtp"
