"""Conditional searches (RFC 9110 section 13.1.2): an availability answer carries an ``ETag`` made of what it was
computed from (engine/search_answer.py ``answer_tag``), and ``If-None-Match`` with that tag answers 304."""

from __future__ import annotations

from litestar.types import Scope

# a client may keep the answer but must ask again before each use (a 304 costs almost nothing)
CACHE_CONTROL = "private, max-age=0, must-revalidate"
CACHE_CONTROL_FIELD = (b"cache-control", CACHE_CONTROL.encode())


def if_none_match(scope: Scope) -> str | None:
    """The request's ``If-None-Match`` (its fields joined, as RFC 9110 section 5.3 allows), read from the ASGI
    scope: most searches carry none, and building the request's headers only to learn that costs more than the
    rest of the check."""
    found = [value.decode("latin-1") for name, value in scope["headers"] if name == b"if-none-match"]
    return ", ".join(found) if found else None


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def none_match(header: str | None, etag: str) -> bool:
    """Whether ``If-None-Match: header`` matches ``etag`` (weak comparison, as the RFC asks for this header):
    ``*``, or any listed tag equal to it."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(_opaque(tag) == etag for tag in header.split(","))
