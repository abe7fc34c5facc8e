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

    def __init__(
        self,
        *,
        data_reply: str | None,
        rcpt_reply: str = "250 OK",
        data_cmd: str | None = "354 go on",
        auth: bool = False,
    ) -> None:
        self.data_reply, self.rcpt_reply, self.data_cmd, self.auth = data_reply, rcpt_reply, data_cmd, auth
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
                conn.sendall(b"250-scripted\r\n250 AUTH PLAIN\r\n" if self.auth else b"250 scripted\r\n")
            elif verb == b"MAIL":
                conn.sendall(b"250 OK\r\n")
            elif verb == b"RCPT":
                conn.sendall(self.rcpt_reply.encode() + b"\r\n")
            elif verb == b"DATA":
                if self.data_cmd is None:  # hang up on the DATA command itself: nothing was sent yet
                    conn.close()
                    return
                conn.sendall(self.data_cmd.encode() + b"\r\n")
                if not self.data_cmd.startswith("354"):
                    continue
                while (line := f.readline()) != b".\r\n":
                    if line == b"":  # the client went away without the final '.': nothing delivered
                        conn.close()
                        return
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


def test_a_connection_lost_on_the_data_command_is_retried_not_unconfirmed() -> None:
    """The server hangs up before its 354: the message never went out, so the notification is sent again."""
    calls, how = send(ScriptedSmtp(data_reply="250 queued", data_cmd=None))
    assert calls == []
    assert isinstance(how, mailer.DeliveryError) and not how.unconfirmed


def test_a_refused_data_command_never_reaches_the_handover() -> None:
    calls, how = send(ScriptedSmtp(data_reply="250 queued", data_cmd="451 busy"))
    assert calls == []
    assert isinstance(how, mailer.DeliveryError) and not how.unconfirmed


def test_what_the_handover_raises_propagates_and_the_server_gets_no_message() -> None:
    class Lost(Exception):
        pass

    def handing() -> None:
        raise Lost

    peer = ScriptedSmtp(data_reply="250 queued")
    try:
        with pytest.raises(Lost):
            mailer.send(message(), f"smtp://127.0.0.1:{peer.port}", handing)
    finally:
        peer.close()
    assert not peer.got_data  # no final '.': the transaction was dropped


def test_any_other_error_before_the_handover_is_a_delivery_error_to_retry() -> None:
    """A password smtplib cannot encode (AUTH PLAIN is ASCII) raised UnicodeEncodeError out of the mailer, and the
    row went round for ever; now it is one failed attempt, counted."""
    peer = ScriptedSmtp(data_reply="250 queued", auth=True)
    calls: list[bool] = []
    try:
        with pytest.raises(mailer.DeliveryError) as err:
            mailer.send(message(), f"smtp://u:p%C3%A4ss@127.0.0.1:{peer.port}", lambda: calls.append(True))
    finally:
        peer.close()
    assert calls == [] and not err.value.unconfirmed and "UnicodeEncodeError" in str(err.value)


def test_smtps_verifies_the_certificate_on_port_465_and_url_credentials_are_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ssl

    seen: dict[str, object] = {}

    class Fake:
        handing = None
        stopped = None
        accepted = True

        def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
            seen.update(host=host, port=port, context=context)

        def __enter__(self) -> Fake:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def login(self, user: str, password: str) -> None:
            seen.update(user=user, password=password)

        def send_message(self, msg: EmailMessage) -> None:
            seen["sent"] = True

    monkeypatch.setattr(mailer, "_SMTPS", Fake)
    assert mailer.send(message(), "smtps://mail%40clinic:p%40ss%2Fw@smtp.example.org") == "smtp"
    ctx = seen["context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert (seen["host"], seen["port"]) == ("smtp.example.org", 465)
    assert (seen["user"], seen["password"]) == ("mail@clinic", "p@ss/w") and seen["sent"]
