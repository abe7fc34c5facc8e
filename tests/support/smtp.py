"""A real SMTP server (aiosmtpd) for tests: records every message; can refuse or stall on demand."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        self.refuse = False  # answer 451 (temporary failure) to every message
        self.stall_s = 0.0  # wait this long before accepting the recipient
        self.refused = 0
        # Gates: while one is set, a client reaching that point waits there (and `waiting_at_*` is set), so a
        # test can kill a sender at a known point of the conversation.
        self.gate_rcpt = threading.Event()  # before answering RCPT: the DATA has not gone out
        self.gate_data = threading.Event()  # after recording a message, before answering its DATA
        self.waiting_at_rcpt = threading.Event()
        self.waiting_at_data = threading.Event()

    @staticmethod
    async def _wait(gate: threading.Event, waiting: threading.Event) -> None:
        import asyncio

        while gate.is_set():
            waiting.set()
            await asyncio.sleep(0.02)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.stall_s:
            import asyncio

            await asyncio.sleep(self.stall_s)
        await self._wait(self.gate_rcpt, self.waiting_at_rcpt)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refused += 1
            return "451 Try again later"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
        await self._wait(self.gate_data, self.waiting_at_data)
        return "250 Message accepted for delivery"

    def by_notification(self) -> dict[str, list[EmailMessage]]:
        out: dict[str, list[EmailMessage]] = {}
        with self.lock:
            for m in self.messages:
                out.setdefault(str(m["X-Booking-Notification"]), []).append(m)
        return out

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate(self):
                return True
            time.sleep(0.1)
        return bool(predicate(self))


class SmtpServer:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def ics_of(msg: EmailMessage) -> bytes:
    for part in msg.iter_attachments():
        if part.get_content_type() == "text/calendar":
            payload = part.get_content()
            return payload.encode() if isinstance(payload, str) else bytes(payload)
    raise AssertionError("no text/calendar attachment")
