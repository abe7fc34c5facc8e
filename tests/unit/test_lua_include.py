"""Each script carries only the prelude helpers it uses (bullmq's ``--- @include``, done by reading the code): fewer
closures made per call, and the script sent to Redis is what it runs."""

from __future__ import annotations

import re

import pytest

from engine.scripts import registry

_LOCAL = re.compile(r"^local (?:function )?([A-Za-z_]\w*)", re.M)
_NAME = re.compile(r"[A-Za-z_]\w*")


def _helpers(text: str) -> set[str]:
    return set(_LOCAL.findall(text))


PRELUDE = _helpers(registry._read("_prelude"))


@pytest.mark.parametrize("name", registry.NAMES)
def test_a_script_carries_exactly_the_helpers_it_reaches(name: str) -> None:
    script = registry._read(name)
    sent = registry.source(name)
    carried = _helpers(sent[: len(sent) - len(script)]) & PRELUDE
    code = registry._code(sent)  # what is carried, its comments left out
    # every helper named by the script or by a helper it carries is carried (and defined before it is used) ...
    for used in set(_NAME.findall(code)) & PRELUDE:
        assert used in carried, (name, used)
        defined = re.search(rf"^local (?:function )?{used}\b", sent, re.M)
        assert defined and defined.start() < sent.index(script), (name, used)
    # ... and nothing else is
    reached = set(_NAME.findall(registry._code(script)))
    for helper in carried:
        others = code.replace(re.search(rf"^local (?:function )?{helper}\b", code, re.M)[0], "", 1)  # type: ignore[index]
        assert helper in reached or re.search(rf"\b{helper}\b", others), (name, helper)


def test_small_scripts_carry_no_helpers_and_the_claims_carry_theirs() -> None:
    assert not _helpers(registry.source("limit")) & PRELUDE
    hold = _helpers(registry.source("hold"))
    assert {"idem_lookup", "live_overlaps", "emit", "int"} <= hold  # int: through emit and live_overlaps
    assert "wl_kit" not in hold and "offer_freed" not in hold
    assert {"wl_kit", "offer_freed", "int"} <= _helpers(registry.source("cancel"))
    assert len(registry.source("hold")) < len(registry._read("_prelude")) + len(registry._read("hold"))


def test_comments_do_not_count_as_uses() -> None:
    assert registry._code("x = 1 -- wl_kit here\ny = '--not a comment' -- but this is") == (
        "x = 1 \ny = '--not a comment' "
    )
