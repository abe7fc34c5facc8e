"""Redis refusing to serve (issue 22, item 7) is Redis unavailable, never a 500: a real redis-server of this test
made to answer BUSY (a script past busy-reply-threshold), OOM (maxmemory 1, noeviction) and READONLY (made a
replica of a primary that does not answer). Writes answer 503 ``dependency_unavailable`` with Retry-After and
change nothing; a search of a day this process knows answers 200 with the slots it knew (stale while Redis answers
nothing, BUSY), one of a day it never read 503; once Redis serves again, everything works and nothing was lost."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from engine.redis import clients
from tests.support import processes
from tests.support.http import next_weekday, setup_practice

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
# a script that spins until SCRIPT KILL (or 30 s at most): it never writes, so SCRIPT KILL may stop it
SPIN = "local s = tonumber(redis.call('TIME')[1]) while tonumber(redis.call('TIME')[1]) - s < 30 do end return 1"


@pytest.fixture
def own_redis() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = processes.spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no"])  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    r = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    for _ in range(200):
        with contextlib.suppress(redis.RedisError):
            if r.ping():
                break
        time.sleep(0.05)
    r.close()
    try:
        yield url
    finally:
        processes.stop(proc)


@contextlib.contextmanager
def busy(url: str) -> Iterator[None]:
    """Redis answers BUSY to everyone while a script spins past a 50 ms busy threshold."""
    admin = redis.Redis.from_url(url)
    admin.config_set("busy-reply-threshold", 50)

    def spin() -> None:
        spinner = redis.Redis.from_url(url)
        with contextlib.suppress(ResponseError):  # "Script killed by user"
            spinner.eval(SPIN, 0)
        spinner.close()

    spinning = threading.Thread(target=spin, daemon=True)
    spinning.start()
    for _ in range(200):
        try:
            admin.ping()
        except ResponseError as exc:
            assert isinstance(exc, clients.RedisBusyError), exc
            break
        time.sleep(0.02)
    else:
        raise AssertionError("Redis never answered BUSY")
    try:
        yield
    finally:
        for _ in range(200):
            try:
                admin.script_kill()
                break
            except ResponseError:  # NOTBUSY: not yet or no longer
                time.sleep(0.02)
        spinning.join(10)
        admin.close()


@contextlib.contextmanager
def out_of_memory(url: str) -> Iterator[None]:
    admin = redis.Redis.from_url(url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    with pytest.raises(OutOfMemoryError):
        admin.set("probe", "1")
    try:
        yield
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()


@contextlib.contextmanager
def read_only(url: str) -> Iterator[None]:
    """A replica (of a primary that does not answer: nothing syncs, reads are served, writes refused)."""
    admin = redis.Redis.from_url(url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = int(s.getsockname()[1])
    admin.replicaof("127.0.0.1", nobody)
    with pytest.raises(ReadOnlyError):
        admin.set("probe", "1")
    try:
        yield
    finally:
        admin.replicaof("NO", "ONE")
        admin.close()


REFUSALS = {"busy": busy, "oom": out_of_memory, "readonly": read_only}


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_a_refusing_redis_is_a_503_or_a_stale_answer_never_a_500(make_client: Any, own_redis: str, kind: str) -> None:
    c = make_client(redis_url=own_redis, stale_read_seconds=60)
    ctx = setup_practice(c, practitioners=2)
    pid, vt, pr = ctx["practice_id"], ctx["visit_types"][30], ctx["practitioners"][0]
    day, unread = next_weekday(1), next_weekday(3)
    known = {"date": day.isoformat(), "visit_type_id": vt, "days": 2}
    first = c.get(f"/v1/practices/{pid}/availability", params=known)
    assert first.status_code == 200 and first.json()["slots"], first.text
    slots = first.json()["slots"]
    hold = {"practitioner_id": pr, "visit_type_id": vt, "start": slots[0]["start"]}
    entries = redis.Redis.from_url(own_redis).dbsize()

    with REFUSALS[kind](own_redis):
        for refused in (
            c.post("/v1/holds", json=hold),
            c.get(f"/v1/practices/{pid}/availability", params={"date": unread.isoformat(), "visit_type_id": vt}),
        ):
            assert refused.status_code == 503, (kind, refused.text)
            assert refused.json()["code"] == "dependency_unavailable" and refused.headers["retry-after"]
        again = c.get(f"/v1/practices/{pid}/availability", params=known)
        assert again.status_code == 200, (kind, again.text)
        assert again.json()["slots"] == slots
        if kind == "busy":  # Redis answered nothing: the last known availability, said to be so
            assert again.json()["stale"] is True and "age" in again.headers
        if kind != "busy":
            assert redis.Redis.from_url(own_redis).dbsize() == entries  # nothing was changed

    held = c.post("/v1/holds", json=hold)  # serving again: the slot was never taken
    assert held.status_code == 201, held.text


def test_the_refusals_are_named_for_every_client_of_the_process() -> None:
    """redis-py leaves BUSY a bare ResponseError; engine/redis/clients.py names it (and NOREPLICAS, MISCONF) in the table
    every parser reads, the pipelined reads' included."""
    for reply, cls in [
        ("BUSY Redis is busy running a script.", clients.RedisBusyError),
        ("NOREPLICAS Not enough good replicas to write.", clients.RedisNoReplicasError),
        ("MISCONF Redis is configured to save RDB snapshots", clients.RedisMisconfError),
        ("OOM command not allowed when used memory > 'maxmemory'.", OutOfMemoryError),
        ("READONLY You can't write against a read only replica.", ReadOnlyError),
        ("LOADING Redis is loading the dataset in memory", redis.exceptions.BusyLoadingError),
        ("MASTERDOWN Link with MASTER is down", redis.exceptions.MasterDownError),
    ]:
        err = clients.error_reply(reply)
        assert isinstance(err, cls) and isinstance(err, clients.UNREACHABLE), reply
    assert not isinstance(clients.error_reply("ERR unknown command"), clients.UNREACHABLE)
    assert not isinstance(clients.error_reply("WRONGTYPE Operation against a key"), clients.UNREACHABLE)
