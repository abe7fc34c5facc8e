"""Logs an operator can use (issue 21): LOG_FORMAT text or json, the request id (the X-Request-ID answered) in
every line a request causes, in its threads too, and with ACCESS_LOG=1 one line per request (id, method, path,
status, duration)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from api import logs
from api.metrics import Metrics, metrics_middleware
from engine.settings import Settings

log = logging.getLogger("booking.test")


@pytest.fixture
def captured() -> Iterator[dict[str, io.StringIO]]:
    """The lines the root logger writes in each format."""
    root = logging.getLogger()
    streams = {fmt: io.StringIO() for fmt in logs.FORMATS}
    handlers = [logs.handler(fmt, stream) for fmt, stream in streams.items()]
    level = root.level
    root.setLevel(logging.INFO)
    for h in handlers:
        root.addHandler(h)
    try:
        yield streams
    finally:
        for h in handlers:
            root.removeHandler(h)
        root.setLevel(level)


def _request(headers: list[tuple[bytes, bytes]], access_log: bool) -> list[Any]:
    """One GET /v1/things through the middleware; the app logs a line, and another from a thread."""
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        log.warning("inside the request")
        await asyncio.to_thread(log.warning, "in a thread of the request")
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        sent.append(message)

    state = SimpleNamespace(metrics=Metrics(), settings=Settings(access_log=access_log))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/things",
        "headers": headers,
        "app": SimpleNamespace(state=state),
    }
    asyncio.run(metrics_middleware(app)(scope, None, send))
    log.warning("after the request")
    return sent


def test_json_lines_carry_the_request_id_and_the_access_line(captured: dict[str, io.StringIO]) -> None:
    sent = _request([(b"x-request-id", b"req-21")], access_log=True)
    assert (b"x-request-id", b"req-21") in sent[0]["headers"]
    lines = [json.loads(line) for line in captured["json"].getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    assert by_message["inside the request"]["request_id"] == "req-21"
    assert by_message["in a thread of the request"]["request_id"] == "req-21"
    assert "request_id" not in by_message["after the request"]
    [access] = [line for line in lines if line["logger"] == "booking.access"]
    assert access["request_id"] == "req-21" and access["method"] == "GET" and access["path"] == "/v1/things"
    assert access["status"] == 418 and access["duration_ms"] >= 0 and access["level"] == "INFO"
    assert {"time", "level", "logger", "message"} <= set(by_message["inside the request"])


def test_text_lines_end_with_the_request_id(captured: dict[str, io.StringIO]) -> None:
    _request([], access_log=False)  # no id sent: the middleware makes one
    lines = captured["text"].getvalue().splitlines()
    inside = next(line for line in lines if "inside the request" in line)
    rid = inside.rsplit("request_id=", 1)[1]
    assert len(rid) == 32 and " WARNING booking.test inside the request request_id=" in inside
    assert next(line for line in lines if "in a thread" in line).endswith(f"request_id={rid}")
    assert "request_id=" not in next(line for line in lines if "after the request" in line)
    assert not [line for line in lines if "booking.access" in line]  # ACCESS_LOG off: no access line


def test_a_traceback_stays_in_its_json_line(captured: dict[str, io.StringIO]) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    [line] = captured["json"].getvalue().splitlines()
    got = json.loads(line)
    assert got["message"] == "failed" and "RuntimeError: boom" in got["exc"] and got["level"] == "ERROR"
