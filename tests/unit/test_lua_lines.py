"""Redis names a Lua error's line in the source it ran (``user_script:<n>``), which is the engine's limits and the
shared prelude put in front of the script: ``registry.locate`` maps it back to the file and line it comes from."""

from __future__ import annotations

import pytest

from engine.redis.errors import NoScriptError, ResponseError
from engine.redis.scripts import located
from engine.scripts import registry


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_line_of_the_source_maps_to_its_file(name: str) -> None:
    sent = registry.source(name).split("\n")
    if sent[-1] == "":
        sent.pop()  # the script's last newline ends its last line
    files = {
        "lua/_prelude.lua": registry._read("_prelude").split("\n"),
        f"lua/{name}.lua": registry._read(name).split("\n"),
    }
    for n, line in enumerate(sent, start=1):
        where = registry.locate(name, n)
        if where == "engine/limits.py":
            assert "engine/limits.py" in line
            continue
        path, _, number = where.rpartition(":")
        if path == "lua/_prelude.lua" and int(number) == len(files[path]) + 1:
            assert line == ""  # the newline put between the prelude and the script
            continue
        assert files[path][int(number) - 1] == line, (name, n, where)
    body = registry._read(name).rstrip("\n").split("\n")
    assert registry.locate(name, len(sent)) == f"lua/{name}.lua:{len(body)}"


def test_an_error_reply_names_the_file_and_line_and_keeps_its_class() -> None:
    n = registry.source("hold").split("\n").index("local replay = idem_lookup(KEYS[8], ARGV[12])") + 1
    err = ResponseError(f"user_script:{n}: boom script: abc, on @user_script:{n}.")
    out = located(err, "hold", registry.locate)
    assert type(out) is ResponseError
    hold_line = registry._read("hold").split("\n").index("local replay = idem_lookup(KEYS[8], ARGV[12])") + 1
    assert f"user_script:{n} (lua/hold.lua:{hold_line}): boom" in str(out)
    assert located(NoScriptError("NOSCRIPT x"), "hold", registry.locate).__class__ is NoScriptError
    plain = ResponseError("WRONGTYPE Operation against a key")
    assert located(plain, "hold", registry.locate) is plain
    assert located(err, "hold", None) is err
