"""`booking bench` is safe to run (issue 20 item 7): without the bench extra it says in one line what to install;
it never flushes a Redis it did not create (its own server by default; a given one only when empty); `--target`
drives a deployment with the admin token it is given, not a built-in one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.databases import redis_client
from tests.support.servers import run_cli


def test_bench_without_its_extra_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "hdrh.py").write_text("raise ModuleNotFoundError(\"No module named 'hdrh'\", name='hdrh')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    res = run_cli(env, "bench", "--help", timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [
        "booking bench: needs the `bench` extra (no module 'hdrh'): pip install 'booking-engine[bench]' "
        "(in a checkout: scripts/test installs it)"
    ]


def test_target_takes_the_admin_token_it_is_given() -> None:
    pytest.importorskip("hdrh", reason="the benchmark suite needs the `bench` extra")
    from benchmarks import options, targets

    with pytest.raises(SystemExit, match="--target needs --admin-token"):
        options.parse(["--target", "http://127.0.0.1:8000", "--redis-url", "redis://127.0.0.1:6379/0"])
    with pytest.raises(SystemExit, match="--target needs --redis-url"):
        options.parse(["--target", "http://127.0.0.1:8000", "--admin-token", "theirs"])
    with pytest.raises(SystemExit, match="--admin-token goes with --target"):
        options.parse(["--admin-token", "theirs"])
    given = ["--target", "http://127.0.0.1:8000", "--admin-token", "theirs", "--redis-url", "redis://h:1/0"]
    assert options.parse(given).admin_token == "theirs"
    own = options.parse([])
    assert (own.admin_token, own.redis_url) == (targets.ADMIN_TOKEN, None)  # None: a Redis of its own


def test_bench_refuses_a_redis_that_holds_data_and_leaves_it_untouched(
    lease_redis_dbs: Callable[[int], list[str]],
) -> None:
    pytest.importorskip("hdrh", reason="the benchmark suite needs the `bench` extra")
    (url,) = lease_redis_dbs(1)  # flushed when the test ends
    with redis_client(url) as r:
        r.set("someone-elses", "data")
    res = run_cli(dict(os.environ), "bench", "--quick", "--redis-url", url, "--set", "lock_wait=1", timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"booking bench: {url} holds 1 keys" in res.stderr
    with redis_client(url) as r:
        assert r.get("someone-elses") == b"data"
