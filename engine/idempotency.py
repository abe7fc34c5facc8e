"""Idempotent replays that an operator cannot read: what Redis stores for an ``Idempotency-Key`` is sealed with a
key derived from the client's Idempotency-Key, which Redis never sees in clear.

- the Redis key names ``ref``, a one-way derivation of the client's key (never the key itself);
- the request fingerprint is an HMAC under a derived key (no hash of patient data an operator could test guesses
  against without the client's key) of the request's ``scope`` (its method, route and every path parameter: the
  waitlist entry of an accept, say) and its body, so a key sent again to another route or another resource is
  ``idempotency_key_reused``, never the first resource's answer;
- the stored record (with the patient's data and, for a booking, the manage token) is AES-GCM sealed under a
  third derived key, its ``ref`` bound as associated data. A booking's record is sealed before the hold is read
  (the booking costs no read of its own), so book.lua appends the hold's visit type and interval in clear, as
  the appointment and hold hashes hold them (``engine.appointments``: the answer put together again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LABEL = b"booking-idempotency-v1\0"


class IdempotencyKey(msgspec.Struct, frozen=True):
    ref: str  # what Redis sees in the key name
    fingerprint: str  # HMAC of the request's scope (method, route, path parameters) and body
    secret: bytes  # AES-256-GCM key; never leaves the process


def _derive(master: bytes, purpose: bytes) -> bytes:
    return hmac.new(master, purpose, hashlib.sha256).digest()


def scope_of(method: str, route: str, path_params: Mapping[str, object]) -> str:
    """What a request is about besides its body: ``POST /v1/waitlist/{entry_id}/accept entry_id=<id>``. Every path
    parameter is in it, so one key cannot replay one resource's answer to a request about another."""
    params = "&".join(f"{name}={path_params[name]}" for name in sorted(path_params))
    return f"{method.upper()} {route} {params}"


def derive(client_key: str, body: bytes, scope: str = "") -> IdempotencyKey:
    """The derived values of one request's Idempotency-Key, its ``scope`` (``scope_of``: the API passes it for
    every request) and its body. The scope and the body are length-prefixed into the fingerprint, so no two
    different (scope, body) pairs share one."""
    master = hashlib.sha256(_LABEL + client_key.encode("utf-8", "surrogatepass")).digest()
    scoped = scope.encode("utf-8", "surrogatepass")
    framed = len(scoped).to_bytes(4, "big") + scoped + body
    return IdempotencyKey(
        ref=_derive(master, b"ref").hex()[:40],
        fingerprint=hmac.new(_derive(master, b"fingerprint"), framed, hashlib.sha256).hexdigest(),
        secret=_derive(master, b"seal"),
    )


def seal(key: IdempotencyKey, record: bytes) -> bytes:
    nonce = os.urandom(12)
    return base64.urlsafe_b64encode(nonce + AESGCM(key.secret).encrypt(nonce, record, key.ref.encode()))


def unseal(key: IdempotencyKey, sealed: bytes) -> bytes:
    """The stored record; ValueError when it was not sealed with this key (tampered, or another key)."""
    raw = base64.urlsafe_b64decode(sealed)
    try:
        return AESGCM(key.secret).decrypt(raw[:12], raw[12:], key.ref.encode())
    except InvalidTag:
        raise ValueError("the stored idempotent answer does not open with this Idempotency-Key") from None
