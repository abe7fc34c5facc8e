"""Opaque ids. Child ids start with their practice id so every lookup knows its hash tag at once.

practice      <16 hex>
practitioner  <practice>.r<hex>
visit type    <practice>.v<hex>
hold          <practitioner>.h<urlsafe 128 bits>     (its practitioner never changes)
series        <practitioner>.s<urlsafe 128 bits>     (held all at once: one hold per occurrence)
appointment   <practice>.a<urlsafe 96 bits>
waitlist     <practice>.w<urlsafe 96 bits>
resource      <practice>.q<hex>                      (a room or a piece of equipment)
manage token  urlsafe 256 bits (stored only as a SHA-256 hash)
"""

from __future__ import annotations

import hashlib
import re
import secrets

_PRACTICE = re.compile(r"^[0-9a-f]{16}$")
_CHILD = re.compile(r"^([0-9a-f]{16})\.([rvaq])[0-9a-f]{8,32}$")
_APPT = re.compile(r"^([0-9a-f]{16})\.a[A-Za-z0-9_-]{16,64}$")
_ENTRY = re.compile(r"^([0-9a-f]{16})\.w[A-Za-z0-9_-]{16,64}$")
_HOLD = re.compile(r"^(([0-9a-f]{16})\.r[0-9a-f]{8,32})\.h[A-Za-z0-9_-]{22,64}$")
_SERIES = re.compile(r"^(([0-9a-f]{16})\.r[0-9a-f]{8,32})\.s[A-Za-z0-9_-]{22,64}$")


def new_practice_id() -> str:
    return secrets.token_hex(8)


def new_practitioner_id(practice_id: str) -> str:
    return f"{practice_id}.r{secrets.token_hex(6)}"


def new_visit_type_id(practice_id: str) -> str:
    return f"{practice_id}.v{secrets.token_hex(6)}"


def new_resource_id(practice_id: str) -> str:
    return f"{practice_id}.q{secrets.token_hex(6)}"


def new_hold_id(practitioner_id: str) -> str:
    return f"{practitioner_id}.h{secrets.token_urlsafe(16)}"


def new_series_id(practitioner_id: str) -> str:
    return f"{practitioner_id}.s{secrets.token_urlsafe(16)}"


def new_appointment_id(practice_id: str) -> str:
    return f"{practice_id}.a{secrets.token_urlsafe(12)}"


def new_waitlist_entry_id(practice_id: str) -> str:
    return f"{practice_id}.w{secrets.token_urlsafe(12)}"


def new_manage_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def practice_of(any_id: str, kind: str) -> str | None:
    """The practice id inside a child id of ``kind`` ('r', 'v', 'q', 'a', 'w', 'h', 's', 'p'), or None when
    malformed."""
    if kind == "p":
        return any_id if _PRACTICE.match(any_id) else None
    if kind == "a":
        m = _APPT.match(any_id)
        return m.group(1) if m else None
    if kind == "w":
        m = _ENTRY.match(any_id)
        return m.group(1) if m else None
    if kind == "h":
        m = _HOLD.match(any_id)
        return m.group(2) if m else None
    if kind == "s":
        m = _SERIES.match(any_id)
        return m.group(2) if m else None
    m = _CHILD.match(any_id)
    return m.group(1) if m and m.group(2) == kind else None


def practitioner_of_hold(hold_id: str) -> str | None:
    m = _HOLD.match(hold_id)
    return m.group(1) if m else None


def practitioner_of_series(series_id: str) -> str | None:
    m = _SERIES.match(series_id)
    return m.group(1) if m else None
