"""The unit tier: pure logic, no server. `scripts/test unit` runs only these, with Redis and PostgreSQL stopped or
never installed; a test here that opens a network connection fails, so it cannot quietly need one."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


class NetworkInUnitTestError(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(self: socket.socket, address: object) -> None:
        raise NetworkInUnitTestError(f"a unit test opened a connection to {address!r}: it belongs in tests/integration")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield
