"""Who is calling, and may they? (API.md, "Who may do what")."""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Any, Literal

import msgspec
from litestar import Request

from api.problems import AuthError
from engine import access, errors, ids
from engine.settings import Settings

# "open": a caller without credentials in the embedded default with no BOOKING_ADMIN_TOKEN. It may set up
# (practices, practitioners, visit types, schedules) and is otherwise a public client: patients' data, the
# audit trail and staff keys need the manage token or a configured credential in every mode.
# "app": a consumer booking app's backend (an app key and X-End-User): a public client of the key's practices, its
# abuse limits counted per (key, end user) and per key instead of per address.
Kind = Literal["admin", "staff", "public", "open", "app"]
END_USER_MAX = 200


class Principal(msgspec.Struct, frozen=True):
    kind: Kind
    actor: str
    practice_id: str | None = None  # for staff
    manage_token: str | None = None  # a patient's X-Manage-Token, checked per appointment
    app_key_id: str | None = None  # for an app: its key
    app_practices: tuple[str, ...] | None = None  # for an app: the practices its key is for (None: all)
    end_user: str | None = None  # for an app: the SHA-256 of X-End-User (the app's own opaque user id)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def client_id(request: Request[Any, Any, Any]) -> str:
    """Who a public client is, for abuse limits: its address (an IPv6 one as its /64), or the value a trusted proxy
    put in ``BOOKING_CLIENT_HEADER``."""
    settings: Settings = request.app.state.settings
    if settings.client_header:
        forwarded = forwarded_client(request.headers.getall(settings.client_header, []), settings.trusted_hops)
        if forwarded:
            return address_group(forwarded)
    return address_group(request.client.host) if request.client else "unknown"


def forwarded_client(values: list[str], trusted_hops: int) -> str | None:
    """The client as the outermost of ``trusted_hops`` trusted proxies saw it, from an appending header such as
    X-Forwarded-For (``client, proxy1, proxy2``; several header lines count as one list, in order). Each trusted
    proxy appends the address it received the request from, so the value ``trusted_hops`` from the right is the
    one the outermost trusted proxy added; whatever is left of it the client may have written itself. With fewer
    values than hops (a request that reached an inner proxy directly), the leftmost, which a trusted proxy added."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if not items:
        return None
    return items[-trusted_hops] if len(items) >= trusted_hops else items[0]


@functools.lru_cache(maxsize=8192)  # pure; parsing an address costs more than the rest of the limit check
def address_group(address: str) -> str:
    """The unit abuse limits count: an IPv4 address as is, an IPv6 one as its /64 (one subscriber's prefix: a
    client may take any address of it), an IPv4-mapped IPv6 address as its IPv4; ``[v6]:port`` and ``v4:port`` as
    proxies may write them lose the port. Anything else (an obfuscated id such as ``_hidden``) as sent, capped."""
    text = address.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:  # 203.0.113.7:5050
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return address.strip()[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _wire(header_value: str) -> bytes:
    """The bytes a header carried: ASGI servers hand them over decoded as latin-1. hmac.compare_digest refuses
    non-ASCII str (a TypeError, which was a 500), so credentials are compared as bytes."""
    try:
        return header_value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire: compare its UTF-8 form
        return header_value.encode("utf-8", "surrogatepass")


def _is_admin_token(token: str, settings: Settings) -> bool:
    if not settings.admin_token:
        return False
    return hmac.compare_digest(_wire(token), settings.admin_token.encode("utf-8", "surrogatepass"))


async def principal(request: Request[Any, Any, Any], practice_id: str | None = None) -> Principal:
    """The caller. With ``practice_id``, as that practice sees it: a staff key of another practice is no
    credential there, so its holder is a public caller (never staff of that practice)."""
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    manage = request.headers.get("x-manage-token") or request.query_params.get("manage_token")
    if token:
        if _is_admin_token(token, settings):
            return Principal("admin", "admin", manage_token=manage)
        if token.startswith(access.APP_KEY_PREFIX):
            return await _app(request, token, practice_id, manage)
        key = await access.lookup_key(request.app.state.engine, token)
        if key is None:
            raise AuthError(401, "unauthorized", "unknown or revoked bearer token")
        if practice_id is None or key.practice_id == practice_id:
            return Principal("staff", f"staff:{key.id}", practice_id=key.practice_id, manage_token=manage)
    elif header:
        raise AuthError(401, "unauthorized", "the Authorization header must be 'Bearer <token>'")
    if settings.embedded and not settings.admin_token:
        return Principal("open", f"open:{client_id(request)}", manage_token=manage)
    return Principal("public", f"public:{client_id(request)}", manage_token=manage)


async def _app(request: Request[Any, Any, Any], token: str, practice_id: str | None, manage: str | None) -> Principal:
    key = await access.lookup_app_key(request.app.state.engine, token)
    if key is None:
        raise AuthError(401, "unauthorized", "unknown or revoked app key")
    end_user = request.headers.get("x-end-user", "")
    if not end_user.strip() or len(end_user) > END_USER_MAX:
        raise errors.InvalidRequestError(
            f"an app key needs X-End-User: the app's own opaque id of the end user (1 to {END_USER_MAX} characters)"
        )
    practices = None if key.practice_ids is None else tuple(key.practice_ids)
    p = Principal(
        "app", f"app:{key.id}", manage_token=manage, app_key_id=key.id, app_practices=practices,
        end_user=ids.token_hash(end_user)[:32],
    )  # fmt: skip
    if practice_id is not None:
        require_app_practice(p, practice_id)
    return p


def require_app_practice(p: Principal, practice_id: str) -> None:
    """An app key acts only for the practices it lists (all when it lists none)."""
    if p.kind == "app" and p.app_practices is not None and practice_id not in p.app_practices:
        raise AuthError(403, "forbidden", f"this app key is not for practice {practice_id}")


def require_same_practice(p: Principal, practice_id: str, kind: str, ident: str) -> None:
    """Staff of one practice never see another's resources: they do not exist for them (404). An app key acts
    only for its practices (403)."""
    if p.kind == "staff" and p.practice_id != practice_id:
        raise errors.NotFoundError(kind, ident)
    require_app_practice(p, practice_id)


def require_staff(p: Principal, practice_id: str) -> None:
    """A practice's own resources (its audit trail; its setup outside the open embedded default): the admin,
    or staff of that practice."""
    if p.is_admin or (p.kind == "staff" and p.practice_id == practice_id):
        return
    if p.kind == "staff":
        raise errors.NotFoundError("practice", practice_id)  # never reveal another practice's resources
    if p.kind == "app":
        raise AuthError(403, "forbidden", "an app key may do only what a public client may")
    raise AuthError(401, "unauthorized", "this call needs a bearer token (admin or practice staff)")


def require_admin(p: Principal) -> None:
    if p.is_admin:
        return
    if p.kind in ("staff", "app"):
        raise AuthError(403, "forbidden", "only the admin may do this")
    raise AuthError(401, "unauthorized", "this call needs the admin bearer token")


def require_setup(p: Principal, practice_id: str | None = None) -> None:
    """Setup (practices, practitioners, visit types, schedules): open in the embedded default with no admin
    token; otherwise the admin, or staff of ``practice_id`` (creating a practice, ``None``: the admin)."""
    if p.kind == "open":
        return
    if practice_id is None:
        require_admin(p)
    else:
        require_staff(p, practice_id)


def require_patient_record(p: Principal, practice_id: str, manage_hash: str, kind: str) -> None:
    """A patient's record (an appointment, a waitlist entry): the admin, staff of its practice, or the patient
    holding its manage token. In every mode: the embedded default's open caller is no credential here."""
    if p.is_admin or (p.kind == "staff" and p.practice_id == practice_id):
        return
    if p.manage_token and manage_hash and hmac.compare_digest(ids.token_hash(p.manage_token), manage_hash):
        return
    if p.kind == "staff":
        raise errors.NotFoundError(kind, "")
    if p.manage_token:
        raise AuthError(403, "forbidden", f"this manage token belongs to another {kind}")
    if p.kind == "app":
        raise AuthError(403, "forbidden", f"an app key reads a {kind} only with its X-Manage-Token")
    raise AuthError(401, "unauthorized", "send X-Manage-Token (the patient) or a bearer token (staff)")


def require_appointment(p: Principal, practice_id: str, manage_hash: str) -> None:
    """An appointment: the admin, staff of its practice, or the patient holding its manage token."""
    require_patient_record(p, practice_id, manage_hash, "appointment")
