"""Delivery: SMTP when SMTP_URL is set (with a timeout), otherwise recorded and logged.

``handing`` runs once the server has accepted the sender, the recipients and the DATA command (its 354), just
before the message itself goes out: up to that point nothing can have been delivered, so a worker that dies there
is safely resent; after it the server may hold the message, and the notification is not resent
(persistence/notify/worker.py). When ``handing`` raises (the attempt lost its claim), the connection is dropped
without the final ``.``, so the server discards what it had.

``smtps://`` verifies the server's certificate against the system's CAs (port 465 by default); user and password
in the URL are percent-decoded."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

log = logging.getLogger("booking.notify")
TIMEOUT_S = 10.0
_LEADING_DOT = re.compile(rb"(?m)^\.")


class DeliveryError(Exception):
    """The SMTP server refused or could not be reached (retried with backoff). ``unconfirmed``: the message went
    out and no answer came back (a dropped connection, a timeout), so the server may have it."""

    def __init__(self, message: str, *, unconfirmed: bool = False) -> None:
        super().__init__(message)
        self.unconfirmed = unconfirmed


def _nothing() -> None:
    return None


class _Handing:
    """smtplib's ``data`` through its public ``docmd``/``send``/``getreply``, with ``handing`` between the 354
    and the message, and what happened recorded (``handed``: the message went out; ``accepted``: a 250 for it)."""

    handing: Callable[[], None] = staticmethod(_nothing)
    handed = False
    accepted = False
    stopped: BaseException | None = None  # what ``handing`` raised

    def data(self, msg: Any) -> tuple[int, bytes]:
        smtp: Any = self
        code, reply = smtp.docmd("data")
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        try:
            self.handing()
        except BaseException as exc:
            self.stopped = exc
            smtp.close()  # no final '.': the server drops the transaction
            raise
        body = _LEADING_DOT.sub(b"..", msg)  # send_message hands over bytes with CRLF line ends
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.handed = True
        smtp.send(body + b".\r\n")
        code, reply = smtp.getreply()
        self.accepted = code == 250
        return code, reply


class _SMTP(_Handing, smtplib.SMTP):
    pass


class _SMTPS(_Handing, smtplib.SMTP_SSL):
    pass


def send(msg: EmailMessage, smtp_url: str | None, handing: Callable[[], None] = _nothing) -> str:
    """Deliver; returns how ('smtp' or 'log'). Raises DeliveryError on failure (any error before the message
    went out is one, retried); what ``handing`` raises propagates. ``handing`` does not run when the server
    refused the sender, every recipient or the DATA command."""
    if not smtp_url:
        handing()
        log.info(
            "notification %s (no SMTP_URL: recorded, not mailed): %s", msg["X-Booking-Notification"], msg["Subject"]
        )
        return "log"
    url = urlsplit(smtp_url)
    host = url.hostname or "127.0.0.1"
    smtp: _SMTP | _SMTPS | None = None
    try:
        if url.scheme == "smtps":
            smtp = _SMTPS(host, url.port or 465, timeout=TIMEOUT_S, context=ssl.create_default_context())
        else:
            smtp = _SMTP(host, url.port or 25, timeout=TIMEOUT_S)
        with smtp:
            smtp.handing = handing
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(msg)
    except Exception as exc:  # any failure before the handover is one more retry (counted), never a loop
        if smtp is not None and exc is smtp.stopped:
            raise
        if smtp is not None and smtp.accepted:
            return "smtp"  # the server took it; only the goodbye failed
        answered = isinstance(exc, smtplib.SMTPResponseException)
        unconfirmed = smtp is not None and smtp.handed and not answered
        raise DeliveryError(f"{type(exc).__name__}: {exc}", unconfirmed=unconfirmed) from exc
    return "smtp"
