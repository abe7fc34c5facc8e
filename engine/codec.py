"""Small codecs shared by the engine and the durable side."""

from __future__ import annotations


def text(value: bytes | str | int | None) -> str:
    """A Redis reply (bytes without ``decode_responses``, str with it, or None when absent) as text; None is ''."""
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
