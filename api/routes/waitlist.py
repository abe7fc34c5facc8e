"""The waitlist (API.md, Waitlist): the public joins, the patient manages an entry with its manage token, staff
and admin list and read them."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from api import render
from api.auth import require_patient_record, require_same_practice, require_staff
from api.routes.common import LIMITED, IdemKey, caller, engine, idempotency, limited, raw_json, strict
from api.schemas import AppointmentOut, EmptyIn, WaitlistEntryOut, WaitlistIn, WaitlistList
from engine import errors, ids
from engine.waitlist import Entry


@post(
    "/v1/practices/{practice_id:str}/waitlist",
    status_code=201,
    tags=["waitlist"],
    summary="Join the practice's waitlist (its manage_token is shown once)",
    responses={201: ResponseSpec(WaitlistEntryOut, description="The entry, with its manage_token")},
)
async def join_waitlist(
    request: Request[Any, Any, Any], practice_id: FromPath[str], data: JSONBody[WaitlistIn]
) -> WaitlistEntryOut:
    data = await strict(request, WaitlistIn)
    p, ctx = await caller(request)
    if ids.practice_of(practice_id, "p") is None:
        raise errors.NotFoundError("practice", practice_id)
    require_same_practice(p, practice_id, "practice", practice_id)
    await limited(request, p, "waitlist")
    eng = engine(request)
    # public callers are capped per client (the identity their abuse limits count by); staff and admin are not
    entry = await eng.join_waitlist(practice_id, data, ctx, client=p.actor if p.kind in LIMITED else None)
    return render.entry_out(entry, (await eng.cached_practice(practice_id)).timezone)


@get("/v1/practices/{practice_id:str}/waitlist", tags=["waitlist"], summary="The practice's entries, oldest first")
async def list_waitlist(request: Request[Any, Any, Any], practice_id: FromPath[str]) -> WaitlistList:
    p, _ = await caller(request)
    require_staff(p, practice_id)
    eng = engine(request)
    entries = await eng.list_waitlist(practice_id)
    tz = (await eng.cached_practice(practice_id)).timezone
    return WaitlistList(items=[render.entry_out(e, tz) for e in entries])


async def _authorised(request: Request[Any, Any, Any], entry_id: str) -> tuple[Entry, str]:
    """The entry, for the admin, its practice's staff or the patient with its manage token; its practice's zone."""
    p, _ = await caller(request)
    eng = engine(request)
    entry, manage_hash = await eng.get_waitlist_entry(entry_id)
    try:
        require_patient_record(p, entry.record.practice_id, manage_hash, "waitlist entry")
    except errors.NotFoundError:
        raise errors.NotFoundError("waitlist entry", entry_id) from None
    return entry, (await eng.cached_practice(entry.record.practice_id)).timezone


@get("/v1/waitlist/{entry_id:str}", tags=["waitlist"], summary="Read a waitlist entry")
async def get_waitlist_entry(request: Request[Any, Any, Any], entry_id: FromPath[str]) -> WaitlistEntryOut:
    entry, tz = await _authorised(request, entry_id)
    return render.entry_out(entry, tz)


@post(
    "/v1/waitlist/{entry_id:str}/accept",
    status_code=201,
    tags=["waitlist"],
    summary="Book the entry's live offer",
    responses={201: ResponseSpec(AppointmentOut, description="The appointment, with its own manage_token")},
)
async def accept_offer(
    request: Request[Any, Any, Any],
    entry_id: FromPath[str],
    data: JSONBody[EmptyIn | None] = None,
    idempotency_key: IdemKey = None,
) -> Response[bytes]:
    if await request.body():
        await strict(request, EmptyIn)
    p, ctx = await caller(request)
    entry, tz = await _authorised(request, entry_id)
    await limited(request, p, "book")
    eng = engine(request)
    appt, replay = await eng.accept_offer(entry_id, ctx, await idempotency(request, idempotency_key))
    body = render.appointment_bytes(appt, tz)
    return raw_json(body, 201, {"Idempotent-Replayed": "true"} if replay else None)


@post(
    "/v1/waitlist/{entry_id:str}/decline",
    status_code=200,
    tags=["waitlist"],
    summary="Give the live offer up: the interval goes to the next matching entry",
)
async def decline_offer(
    request: Request[Any, Any, Any], entry_id: FromPath[str], data: JSONBody[EmptyIn | None] = None
) -> WaitlistEntryOut:
    if await request.body():
        await strict(request, EmptyIn)
    _, ctx = await caller(request)
    _, tz = await _authorised(request, entry_id)
    return render.entry_out(await engine(request).decline_offer(entry_id, ctx), tz)


@delete("/v1/waitlist/{entry_id:str}", status_code=204, tags=["waitlist"], summary="Leave the waitlist")
async def leave_waitlist(request: Request[Any, Any, Any], entry_id: FromPath[str]) -> None:
    _, ctx = await caller(request)
    await _authorised(request, entry_id)
    await engine(request).leave_waitlist(entry_id, ctx)


ROUTES = [join_waitlist, list_waitlist, get_waitlist_entry, accept_offer, decline_offer, leave_waitlist]
