"""The processes' logs: one format for every `booking` command (LOG_FORMAT: ``text`` for a terminal, ``json`` one
object a line for a log pipeline), and the id of the request that caused a line in that line.

The request id is the one the API returns in ``X-Request-ID`` (api/metrics.py sets it here for the request's
task; what the request runs in threads or tasks it starts inherits it). With ACCESS_LOG=1 every request writes
one line on ``booking.access``: request id, method, path, status, duration. granian's own lines go through the
same handler (``granian_config``)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import IO, Any

FORMATS = ("text", "json")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
access = logging.getLogger("booking.access")
ACCESS_FIELDS = ("method", "path", "status", "duration_ms")  # ``extra`` of an access line
TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _WithRequestId(logging.Filter):
    """Puts the current request's id (or "") on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message``, then ``request_id=...`` when a request caused it."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{line} request_id={rid}" if rid else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message; request_id and the access fields
    when present; the traceback as ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            out["request_id"] = rid
        for field in ACCESS_FIELDS:
            if hasattr(record, field):
                out[field] = getattr(record, field)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def handler(fmt: str, stream: IO[str]) -> logging.Handler:
    """A handler writing ``fmt`` lines to ``stream``, each with the current request's id."""
    out = logging.StreamHandler(stream)
    out.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    out.addFilter(_WithRequestId())
    return out


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """The root logger writes to stderr in ``fmt``, each line with its request id (replaces earlier handlers)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(fmt, sys.stderr))
    root.setLevel(level)
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def granian_config() -> dict[str, Any]:
    """granian's ``log_dictconfig``: its loggers hand their lines to the root handler (``configure``)."""
    return {
        "loggers": {
            "_granian": {"handlers": [], "propagate": True},
            "granian.access": {"handlers": [], "propagate": True},
        }
    }


def log_request(method: str, path: str, status: int, seconds: float) -> None:
    """The access line of one request (ACCESS_LOG=1); the request id comes from the context."""
    duration_ms = round(seconds * 1000, 3)
    access.info(
        "%s %s %d %.3f ms", method, path, status, duration_ms,
        extra={"method": method, "path": path, "status": status, "duration_ms": duration_ms},
    )  # fmt: skip
