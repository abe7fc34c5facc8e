"""The Redis databases the tests lease (tests/support/redis_dbs.py): a number is held by one lease at a time, never
0 nor the run's default database, flushed when handed out and when given back; the default database is flushed
once per run however many xdist workers ask."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.databases import redis_client
from tests.support.redis_dbs import RedisDatabases, db_of, flush_default_once


def test_leases_hand_out_distinct_numbers_of_the_server_never_0_nor_the_default(
    redis_leases: RedisDatabases,
) -> None:
    with redis_client(redis_leases.url) as r:
        count = int(r.config_get("databases")["databases"])
    with redis_leases.lease(2) as two, redis_leases.lease(1) as one:  # one process, as two workers would
        numbers = [db_of(url) for url in two + one]
    assert len(set(numbers)) == 3, numbers
    assert all(0 < n < count and n != redis_leases.default for n in numbers), numbers
    assert set(redis_leases.numbers()) == set(range(1, count)) - {redis_leases.default}  # every other one


def test_a_held_number_is_not_leased_again_until_it_is_given_back(redis_leases: RedisDatabases) -> None:
    with redis_leases.lease(1) as [url]:
        held = db_of(url)
        only_it = RedisDatabases(redis_leases.url, wait=0.3, numbers=[held])
        with pytest.raises(pytest.fail.Exception, match="no 1 free Redis database"):
            with only_it.lease(1):
                pass
    with only_it.lease(1) as [again]:  # given back: free again
        assert db_of(again) == held


def test_more_numbers_than_the_server_has_fail_at_once(redis_leases: RedisDatabases) -> None:
    with pytest.raises(pytest.fail.Exception, match="has only"):
        with redis_leases.lease(len(redis_leases.numbers()) + 1):
            pass


def test_a_leased_database_is_flushed_when_handed_out_and_when_given_back(
    redis_leases: RedisDatabases, tmp_path: Path
) -> None:
    with redis_leases.lease(1) as [url]:  # held, so that nobody else uses it while a second lease table does
        n = db_of(url)
        inner = RedisDatabases(redis_leases.url, locks=tmp_path, numbers=[n])
        with redis_client(url) as r:
            r.set("left-by-someone", 1)
            with inner.lease(1) as [same]:
                assert db_of(same) == n and r.dbsize() == 0  # flushed when handed out
                r.set("written-in-the-lease", 1)
            assert r.dbsize() == 0  # and when given back


def test_the_default_database_is_flushed_once_per_run(
    redis_leases: RedisDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with redis_leases.lease(1) as [url], redis_client(url) as r:  # a leased one stands for the default here
        monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)
        r.set("k", 1)
        flush_default_once(url, locks=tmp_path)
        assert r.dbsize() == 0  # no xdist: flushed
        monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)
        r.set("k", 1)
        flush_default_once(url, locks=tmp_path)  # the run's first worker
        assert r.dbsize() == 0
        r.set("k", 1)
        flush_default_once(url, locks=tmp_path)  # another worker of the same run: what is there stays
        assert r.get("k") == b"1"
        monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)
        flush_default_once(url, locks=tmp_path)  # the next run
        assert r.dbsize() == 0
