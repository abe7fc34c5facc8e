"""Each Lua script's header is its declaration (``-- KEYS: 1 ...  2 ...`` and ``-- ARGV: 1 ...``, read by
engine/scripts/registry.py ``shape``). The body uses no KEYS or ARGV index its header does not name, the header
numbers them without gaps, and a script that takes the waitlist kit after them (``wl_kit(ki, ai)``) takes it at the
first index past them. Calls made by the tests are checked against the same declaration (tests/support/script_shapes.py)."""

from __future__ import annotations

import re

import pytest

from engine.scripts import registry
from tests.support import script_shapes


def _body(name: str) -> str:
    return registry._read(name).split("\n", len(registry.header(name).splitlines()))[-1]


@pytest.mark.parametrize("name", registry.NAMES)
def test_the_header_names_every_index_the_script_uses(name: str) -> None:
    shape, body, head = registry.shape(name), _body(name), registry.header(name)
    used_keys = {int(k) for k in re.findall(r"KEYS\[(\d+)\]", body)}
    used_argv = {int(k) for k in re.findall(r"ARGV\[(\d+)\]", body)}
    assert max(used_keys, default=0) <= shape.keys, (name, sorted(used_keys), shape)
    assert max(used_argv, default=0) <= shape.argv, (name, sorted(used_argv), shape)
    keys_part = head.partition("KEYS:")[2].partition("ARGV:")[0]
    for i in range(1, shape.keys + 1):
        assert re.search(rf"(?:^|[\s(,]){i}(?=[\s,])", keys_part), f"{name}: KEYS {i} is not described"
    for ki, ai in re.findall(r"wl_kit\((\d+),\s*(\d+)\)", body):
        assert (int(ki), int(ai)) == (shape.keys + 1, shape.argv + 1), (name, ki, ai, shape)
        assert shape.more_keys and shape.more_argv, f"{name} takes the waitlist kit: its header must say so"


def test_a_call_with_a_key_more_or_less_than_the_header_names_fails() -> None:
    shape = registry.shape("hold")
    script_shapes.check("hold", ["k"] * shape.keys, ["a"] * shape.argv)
    with pytest.raises(AssertionError, match=f"declares {shape.keys} KEYS"):
        script_shapes.check("hold", ["k"] * (shape.keys - 1), ["a"] * shape.argv)
    with pytest.raises(AssertionError, match=f"declares {shape.argv} ARGV"):
        script_shapes.check("hold", ["k"] * shape.keys, ["a"] * (shape.argv + 1))
    more = registry.shape("cancel")  # the waitlist kit follows: more is fine, fewer is not
    script_shapes.check("cancel", ["k"] * (more.keys + 9), ["a"] * (more.argv + 4))
    with pytest.raises(AssertionError):
        script_shapes.check("cancel", ["k"] * (more.keys - 1), ["a"] * more.argv)
