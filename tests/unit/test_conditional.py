"""api/conditional.py: reading If-None-Match from the ASGI scope and the weak comparison of RFC 9110 13.1.2."""

from __future__ import annotations

from typing import Any

from api import conditional


def scope(*headers: tuple[bytes, bytes]) -> Any:
    return {"type": "http", "headers": [(b"host", b"x"), *headers, (b"accept", b"*/*")]}


def test_if_none_match_is_read_from_the_scope_and_absent_is_none() -> None:
    assert conditional.if_none_match(scope()) is None
    assert conditional.if_none_match(scope((b"if-none-match", b'"abc"'))) == '"abc"'


def test_repeated_if_none_match_fields_are_joined_as_one_list() -> None:
    s = scope((b"if-none-match", b'"a"'), (b"if-match", b'"z"'), (b"if-none-match", b'W/"b"'))
    header = conditional.if_none_match(s)
    assert header == '"a", W/"b"'
    assert conditional.none_match(header, '"b"')
    assert not conditional.none_match(header, '"z"')


def test_weak_comparison_star_and_lists() -> None:
    assert conditional.none_match("*", '"t"')
    assert conditional.none_match(' "x" , W/"t"', '"t"')
    assert not conditional.none_match('"x", "y"', '"t"')
    assert not conditional.none_match(None, '"t"')
    assert not conditional.none_match("", '"t"')
