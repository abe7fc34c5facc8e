"""A small HTTP/1.1 keep-alive client on raw asyncio protocols (uvloop + httptools).

aiohttp costs about 150 µs of CPU per request in the generator; this client, one Protocol per connection and
a callback per answer, costs about a third of that, which matters when the generator shares 2 cores with the
server it measures (see docs/benchmarks.md, "The generator's own ceiling").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httptools
import msgspec

Done = Callable[[int, bytes, str], None]  # (status or 0, body, error name or '')
_json = msgspec.json.Encoder()


def build_request(method: str, path: str, body: Any = None, token: str | None = None, host: str = "127.0.0.1") -> bytes:
    """The raw bytes of one request (JSON body when ``body`` is not None)."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = body if isinstance(body, bytes) else _json.encode(body)
        head.append("Content-Type: application/json")
    if payload or method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.chunks: list[bytes] = []
        self.done: Done | None = None
        self.closed = False
        self.sent_at = 0.0  # loop time the current request went out (for time-outs)
        self.last_used = 0.0
        self.uses = 0

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("bad_response")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("connection_lost")

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        done, self.done = self.done, None
        body = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks = []
        if not self.parser.should_keep_alive():
            self.close()
        if done is not None:
            done(self.parser.get_status_code(), body, "")

    # use
    def send(self, raw: bytes, done: Done, now: float) -> None:
        self.done = done
        self.sent_at = now
        self.uses += 1
        assert self.transport is not None
        self.transport.write(raw)

    @property
    def busy(self) -> bool:
        return self.done is not None

    def _fail(self, why: str) -> None:
        done, self.done = self.done, None
        self.chunks = []
        if done is not None:
            done(0, b"", why)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def time_out(self) -> None:
        self._fail("timeout")
        self.close()


async def connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Connection, host, port)
    return proto


async def request(conn: Connection, raw: bytes) -> tuple[int, bytes, str]:
    """Awaitable form of one request (seeding and checks; the load path uses callbacks)."""
    fut: asyncio.Future[tuple[int, bytes, str]] = asyncio.get_running_loop().create_future()

    def done(status: int, body: bytes, err: str) -> None:
        if not fut.done():
            fut.set_result((status, body, err))

    conn.send(raw, done, asyncio.get_running_loop().time())
    return await fut


class Client:
    """A small pool of keep-alive connections for awaitable calls (seeding, setup, checks)."""

    def __init__(self, base: str, token: str | None, size: int = 32) -> None:
        hostport = base.split("://", 1)[1].rstrip("/")
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.token = token
        self.sem = asyncio.Semaphore(size)
        self.idle: list[Connection] = []
        self.retries = 0  # requests sent again after their connection failed

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = build_request(method, path, body, self.token)
        async with self.sem:
            for attempt in range(3):
                conn = self.idle.pop() if self.idle else await connect(self.host, self.port)
                if conn.closed:
                    continue
                status, payload, err = await request(conn, raw)
                if err:
                    self.retries += 1
                    if attempt == 2:
                        raise ConnectionError(f"{method} {path}: {err}")
                    continue
                if not conn.closed:
                    self.idle.append(conn)
                return status, (msgspec.json.decode(payload) if payload else None)
        raise ConnectionError(f"{method} {path}: no connection")

    def close(self) -> None:
        for c in self.idle:
            c.close()
        self.idle.clear()
