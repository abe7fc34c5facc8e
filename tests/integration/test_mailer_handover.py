"""persistence/notify/mailer.py over a real socket: `handing` runs once, just before the DATA; an answer to the
DATA (even a refusal) is confirmed, a connection lost after the DATA went out is `unconfirmed` (the worker then
never resends it: each notification goes out at most once)."""

from __future__ import annotations

import socket
import threading
from email.message import EmailMessage

import pytest

from persistence.notify import mailer


class ScriptedSmtp:
    """A one-connection SMTP peer that answers each command as told and, at the end of the DATA, either
    answers `data_reply` or hangs up without a word (`data_reply=None`)."""

    def __init__(self, *, data_reply: str | None, rcpt_reply: str = "250 OK") -> None:
        self.data_reply, self.rcpt_reply = data_reply, rcpt_reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.got_data = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        f = conn.makefile("rb")
        conn.sendall(b"220 scripted\r\n")
        while line := f.readline():
            verb = line.strip().upper()[:4]
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250 scripted\r\n")
            elif verb == b"MAIL":
                conn.sendall(b"250 OK\r\n")
            elif verb == b"RCPT":
                conn.sendall(self.rcpt_reply.encode() + b"\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go on\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                self.got_data = True
                if self.data_reply is None:
                    conn.close()
                    return
                conn.sendall(self.data_reply.encode() + b"\r\n")
            elif verb in (b"QUIT", b"RSET"):
                conn.sendall(b"221 bye\r\n")
                if verb == b"QUIT":
                    break
            else:
                conn.sendall(b"502 no\r\n")
        conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "clinic@example.org", "pat@example.org", "Your visit"
    msg["X-Booking-Notification"] = "a:confirmation:0:1"
    msg.set_content("See you.")
    return msg


def send(peer: ScriptedSmtp) -> tuple[list[bool], str | mailer.DeliveryError]:
    calls: list[bool] = []
    try:
        how: str | mailer.DeliveryError = mailer.send(
            message(), f"smtp://127.0.0.1:{peer.port}", lambda: calls.append(peer.got_data)
        )
    except mailer.DeliveryError as exc:
        how = exc
    finally:
        peer.close()
    return calls, how


def test_accepted_data_is_sent_and_handing_ran_once_before_it() -> None:
    calls, how = send(ScriptedSmtp(data_reply="250 queued"))
    assert calls == [False]  # once, and before the server had the DATA
    assert how == "smtp"


@pytest.mark.parametrize("reply", ["451 try later", "554 rejected"])
def test_a_refused_data_is_a_confirmed_failure(reply: str) -> None:
    calls, how = send(ScriptedSmtp(data_reply=reply))
    assert calls == [False]
    assert isinstance(how, mailer.DeliveryError) and not how.unconfirmed


def test_a_connection_lost_after_the_data_is_unconfirmed() -> None:
    calls, how = send(ScriptedSmtp(data_reply=None))
    assert calls == [False]
    assert isinstance(how, mailer.DeliveryError) and how.unconfirmed


def test_refused_recipient_never_reaches_the_handover() -> None:
    calls, how = send(ScriptedSmtp(data_reply="250 queued", rcpt_reply="550 no such user"))
    assert calls == []
    assert isinstance(how, mailer.DeliveryError) and not how.unconfirmed
