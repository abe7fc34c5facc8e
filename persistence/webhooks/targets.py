"""Which URLs a webhook may target: http or https only, and (unless WEBHOOK_ALLOW_PRIVATE=1) only hosts whose
every address is public: no loopback, private, link-local, shared, reserved, multicast or unspecified address,
IPv4-mapped IPv6 included. Checked when an endpoint is registered and again before each attempt (a name may
resolve elsewhere later)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL = 2048


class TargetError(ValueError):
    """The URL is not a webhook target (``refused``: its host is not public)."""

    def __init__(self, detail: str, refused: bool) -> None:
        super().__init__(detail)
        self.detail, self.refused = detail, refused


def parse(url: str) -> tuple[str, int]:
    """(host, port) of an http or https URL; TargetError (not refused: malformed) otherwise."""
    if len(url) > MAX_URL:
        raise TargetError(f"url is longer than {MAX_URL} characters", refused=False)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"url is not a valid URL: {exc}", refused=False) from None
    if parts.scheme not in ("http", "https"):
        raise TargetError("url must be an http or https URL", refused=False)
    if not parts.hostname:
        raise TargetError("url names no host", refused=False)
    if parts.username is not None or parts.password is not None:
        raise TargetError("url must not carry credentials", refused=False)
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetError(f"the host {host!r} does not resolve ({exc})", refused=True) from None
    return sorted({str(info[4][0]) for info in infos})


def check(url: str, allow_private: bool) -> None:
    """Refuse a URL that is no webhook target (TargetError)."""
    host, port = parse(url)
    if allow_private:
        return
    for address in resolve(host, port):
        if not _public(address):
            raise TargetError(
                f"the host {host!r} resolves to {address}, a loopback, private or otherwise non-public address "
                "(WEBHOOK_ALLOW_PRIVATE=1 allows such targets)",
                refused=True,
            )
