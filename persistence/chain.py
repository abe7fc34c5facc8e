"""The audit hash chain: each row carries the SHA-256 of its predecessor's link, per practice."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64
FIELDS = (
    "id",
    "chain_index",
    "at_ms",
    "action",
    "actor",
    "practice_id",
    "practitioner_id",
    "hold_id",
    "appointment_id",
    "request_id",
    "detail",
)


def canonical(row: Mapping[str, Any]) -> bytes:
    return "\x1f".join("" if row.get(f) is None else str(row[f]) for f in FIELDS).encode()


def link(prev_hash: str, row: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\x1e" + canonical(row)).hexdigest()
