"""Small codecs shared by the engine and its consumers: Redis replies and stream fields as text."""

from __future__ import annotations

from typing import Any

import msgspec

encoder = msgspec.json.Encoder()


def text(value: Any) -> str:
    """A Redis reply (bytes, str, int or None) as text; None becomes ''."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
