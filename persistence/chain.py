"""The audit hash chain: each row carries the SHA-256 of its predecessor's link, per practice.

A row's ``hash_version`` names the canonical form its hash was computed with:

- **2** (every row written since migration 0004): ``SHA-256`` of a JSON array of every stored column but
  ``hash``, in the fixed order of ``FIELDS``, led by the version itself. JSON tells ``null`` from ``""`` and
  a number from a string; ``at`` enters as integer microseconds since the epoch (UTC).
- **1** (rows written before): ``SHA-256(prev_hash ‖ 0x1e ‖ fields joined by 0x1f)`` over ``FIELDS_V1``, with
  NULL written as ``""``. It leaves out ``seq`` and ``at`` and cannot tell NULL from ``""``; those rows keep
  their hashes (rehashing would launder any edit made before the upgrade and change hashes already handed
  out), and ``legacy_problem`` checks what the code that wrote them always made true instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

GENESIS = "0" * 64
VERSION = 2  # the canonical form of the rows written now
VERSIONS = (1, 2)  # the forms `verify` knows
# v2: every column of audit_events but ``hash`` (tests/integration/test_audit_integrity.py checks that none is missing)
FIELDS = (
    "hash_version",
    "id",
    "practice_id",
    "chain_index",
    "seq",
    "at_ms",
    "at",
    "action",
    "actor",
    "practitioner_id",
    "hold_id",
    "appointment_id",
    "request_id",
    "detail",
    "prev_hash",
)
FIELDS_V1 = (
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
NULLABLE = ("practitioner_id", "hold_id", "appointment_id", "request_id")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def micros(at: dt.datetime) -> int:
    """An instant as integer microseconds since the epoch; a naive value (SQLite reads them so) is UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    delta = at - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _value(name: str, value: Any) -> Any:
    return micros(value) if name == "at" and isinstance(value, dt.datetime) else value


def canonical(prev_hash: str, row: Mapping[Any, Any]) -> bytes:
    """The bytes hashed for ``row`` under the version it names (the current one when it names none)."""
    version = row.get("hash_version")
    version = VERSION if version is None else version
    if version == 1:
        fields = "\x1f".join("" if row.get(f) is None else str(row[f]) for f in FIELDS_V1)
        return prev_hash.encode() + b"\x1e" + fields.encode()
    if version == 2:
        values = {**row, "hash_version": 2, "prev_hash": prev_hash}
        return msgspec.json.encode([_value(f, values.get(f)) for f in FIELDS])
    raise ValueError(f"unknown canonical form version {version}")


def link(prev_hash: str, row: Mapping[Any, Any]) -> str:
    return hashlib.sha256(canonical(prev_hash, row)).hexdigest()


def legacy_problem(row: Mapping[Any, Any]) -> str | None:
    """What the version 1 hash leaves out, checked against what the code that wrote those rows always did:
    ``seq`` equal to ``chain_index`` (it stored only ``seq = last_seq + 1`` from 0), ``at`` the instant of
    ``at_ms``, and NULL, never ``""``, in the optional columns."""
    if row["seq"] != row["chain_index"]:
        return f"its seq {row['seq']} is not its chain index (altered)"
    if round(micros(row["at"]) / 1000) != row["at_ms"]:
        return "its at does not match its at_ms (altered)"
    for name in NULLABLE:
        if row.get(name) == "":
            return f"its {name} is '' where NULL was written (altered)"
    return None
