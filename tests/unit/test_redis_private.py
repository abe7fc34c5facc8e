"""What engine/redis/private.py takes from redis-py's private API is still there and still means what it did.

Checked on redis-py 8.1.0 and 8.2.0 (CHECKED). On another release (``scripts/test --latest`` resolves the newest)
these tests say which private name moved, before a cluster failover or a BUSY reply finds out in production."""

from __future__ import annotations

import inspect

import redis
from redis.asyncio.cluster import RedisCluster as AsyncCluster

from engine.redis import clients, private


def test_the_reply_codes_redis_py_does_not_name_are_named_in_its_parsers_table() -> None:
    for code, cls in clients.REPLY_CODES.items():
        err = private.error_reply(f"{code} something went wrong")
        assert type(err) is cls, (redis.__version__, code, type(err))
        assert isinstance(err, redis.exceptions.ResponseError)
    assert type(private.error_reply("LOADING Redis is loading")) is redis.exceptions.BusyLoadingError


def test_the_command_table_parser_is_read_once() -> None:
    parser = private.command_table_once()
    assert inspect.iscoroutinefunction(parser.initialize)
    assert hasattr(parser, "commands"), f"redis-py {redis.__version__}: AsyncCommandsParser has no 'commands'"


def test_the_cluster_internals_the_slot_router_uses_exist() -> None:
    assert issubclass(private.Cluster, AsyncCluster)
    # the refresh flag and the slot of a command, read and set by private.Cluster and private.run
    source = inspect.getsource(AsyncCluster)
    assert "self._initialize" in source, f"redis-py {redis.__version__}: RedisCluster._initialize is gone"
    assert callable(getattr(AsyncCluster, "_determine_slot", None)), redis.__version__
