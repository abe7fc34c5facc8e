"""engine/storm.py with a fake clock: one line when a retry storm starts, at most one summary a minute while it
lasts, one line when it recovers; nothing while calm (issue 21, item 7). No server."""

from __future__ import annotations

import logging

import pytest

from engine.storm import Storm


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(list[str]):
    """The lines logged so far (caplog.messages is a new list at each read)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        super().__init__()
        self.caplog = caplog

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.caplog.messages)

    def __len__(self) -> int:
        return len(self.caplog.messages)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self.caplog.messages[i]

    def __eq__(self, other: object) -> bool:
        return self.caplog.messages == other


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.INFO, logger="test.storm")
    return Lines(caplog)


def test_a_storm_of_retries_logs_start_summaries_and_recovery(lines: Lines) -> None:
    clock = Clock()
    storm = Storm("persister", logging.getLogger("test.storm"), clock)
    storm.ok()
    assert lines == [] and not storm.active  # calm: nothing
    for _ in range(600):  # ten minutes of one retry a second
        storm.failed(ConnectionError("Connection refused"))
        clock.now += 1
    assert storm.active
    starts = [m for m in lines if "retrying, one summary a minute" in m]
    summaries = [m for m in lines if "still failing" in m]
    assert starts == [
        "persister: ConnectionError: Connection refused; retrying, one summary a minute until it recovers"
    ]
    assert len(summaries) == 9  # at 60 s, 120 s ... 540 s: one a minute, never more
    assert summaries[0] == (
        "persister: still failing after 60s, 61 failures (60 in the last 60s); last: ConnectionError: Connection refused"
    )
    assert len(lines) == 10
    storm.ok()
    assert lines[-1] == "persister: recovered after 600.0s, 600 failures; last: ConnectionError: Connection refused"
    assert not storm.active
    storm.ok()
    assert len(lines) == 11  # recovered once


def test_a_short_storm_is_two_lines_and_the_next_one_starts_afresh(lines: Lines) -> None:
    clock = Clock()
    storm = Storm("hold sweeper", logging.getLogger("test.storm"), clock)
    for _ in range(50):
        storm.failed("redis unavailable")
        clock.now += 0.5
    storm.ok()
    assert lines == [
        "hold sweeper: redis unavailable; retrying, one summary a minute until it recovers",
        "hold sweeper: recovered after 25.0s, 50 failures; last: redis unavailable",
    ]
    clock.now += 3600
    storm.failed(TimeoutError())  # an error without text is named by its class
    clock.now += 59.9
    storm.failed("still")
    assert lines[2] == "hold sweeper: TimeoutError; retrying, one summary a minute until it recovers"
    assert len(lines) == 3  # under a minute: no summary yet
    clock.now += 0.1
    storm.failed("still")
    assert lines[3] == "hold sweeper: still failing after 60s, 3 failures (2 in the last 60s); last: still"


def test_summaries_follow_failures_not_the_clock(lines: Lines) -> None:
    """A storm whose retries are minutes apart logs each (a summary is due), and one line per retry at most."""
    clock = Clock()
    storm = Storm("webhook deliverer", logging.getLogger("test.storm"), clock, summary_every_s=60)
    storm.failed("down")
    clock.now += 3600  # an hour without a retry: nothing is logged meanwhile (no thread, no timer)
    assert len(lines) == 1
    storm.failed("down")
    assert lines[1] == "webhook deliverer: still failing after 3600s, 2 failures (1 in the last 3600s); last: down"
