"""A Lua error from a real Redis names the file and line it happened on (issue 20, item 3): the script's own line,
or the prelude's when a shared helper failed, through the async and the sync runner alike."""

from __future__ import annotations

import asyncio

import pytest
import redis as redis_sync
import redis.asyncio as redis_async

from engine.redis.errors import ResponseError
from engine.scripts import registry
from engine.scripts.registry import Call, Lua, SyncLua

pytestmark = pytest.mark.integration


def _line(name: str, text: str) -> int:
    return registry._read(name).split("\n").index(text) + 1


def test_a_script_error_names_its_own_line(redis_db: str) -> None:
    r = redis_sync.Redis.from_url(redis_db)
    try:
        lua = SyncLua(r, ["restore_seq"])
        with pytest.raises(ResponseError) as caught:
            lua(Call("restore_seq", ["bk:v1:{p:lines}:audit"], ["not a number"]))
        assert f"(lua/restore_seq.lua:{_line('restore_seq', 'if have < tonumber(ARGV[1]) then')})" in str(caught.value)
    finally:
        r.close()


def test_a_prelude_error_names_the_prelude_line(redis_db: str) -> None:
    async def run() -> str:
        r = redis_async.Redis.from_url(redis_db)
        try:
            tag = "bk:v1:{p:lines}"
            await r.set(f"{tag}:idem", "no newline in this record")
            shape = registry.shape("hold")
            keys = [f"{tag}:k{i}" for i in range(1, shape.keys + 1)]
            keys[7] = f"{tag}:idem"
            args = ["0"] * shape.argv
            args[11] = "fingerprint"
            with pytest.raises(ResponseError) as caught:
                await Lua(r).run("hold", keys, args)
            return str(caught.value)
        finally:
            await r.aclose()

    message = asyncio.run(run())
    where = _line("_prelude", "  if string.sub(prior, 1, sep - 1) ~= fp then return {'IDEM_MISMATCH'} end")
    assert f"(lua/_prelude.lua:{where})" in message, message
