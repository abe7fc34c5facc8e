"""Small codecs shared by the engine and the durable side: one JSON encoder, Redis replies as text."""

from __future__ import annotations

from typing import Any

import msgspec

encoder = msgspec.json.Encoder()


def text(value: Any) -> str:
    """A Redis reply (bytes without ``decode_responses``, str with it, an int, or None when absent) as text;
    None is ''."""
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
