"""Search, holds and appointments: the patient app's flow."""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from api import conditional, render
from api.auth import Principal, require_appointment, require_same_practice
from api.routes.common import IdemKey, booked, caller, engine, idempotency, instant, raw_json, strict
from api.routes.common import forget as _forget
from api.routes.common import limited as _limited
from api.schemas import (
    AppointmentOut,
    AvailabilityNextOut,
    AvailabilityOut,
    BookIn,
    CancelIn,
    HoldIn,
    HoldOut,
    NotificationList,
    NotificationOut,
    OptionalQueryId,
    QueryId,
    RepeatIn,
    RescheduleIn,
    SearchDate,
    SearchDays,
    SearchFrom,
    SeriesHoldOut,
    SeriesOut,
)
from engine import errors, ids
from engine.appointments import Found
from engine.model import Ctx, patient_record
from engine.series import SeriesBooking
from persistence.notify.queries import notification_rows


@get(
    "/v1/practices/{practice_id:str}/availability",
    tags=["search"],
    summary="Free slots by date",
    responses={200: ResponseSpec(AvailabilityOut, description="Slots sorted by start, then practitioner id")},
)
async def availability(
    request: Request[Any, Any, Any],
    practice_id: FromPath[str],
    date: SearchDate,
    visit_type_id: QueryId,
    days: SearchDays = 1,
    practitioner_id: OptionalQueryId = None,
    from_: SearchFrom = None,
) -> Response[bytes]:
    _, ctx = await caller(request, practice_id)  # staff of another practice search as the public
    from_s = None if from_ is None else math.ceil(instant(from_, "from").timestamp())  # slots start on whole seconds
    eng = engine(request)
    ans = await eng.search_availability(practice_id, date, days, visit_type_id, practitioner_id, ctx, from_s)
    state = request.app.state
    headers: dict[str, str] = {}
    if ans.next is not None:
        nxt = render.next_page(date, days, ans.next, ans.practice.timezone)
        headers["Link"] = f'<{_next_url(request.url.path, nxt, visit_type_id, practitioner_id)}>; rel="next"'
    if ans.stale:  # from the last known availability: no tag (it cannot be revalidated)
        headers["Age"] = str(ans.age_s)
    elif ans.tag is not None:
        etag = f'"{ans.tag}"'
        # ETag and Cache-Control go out as bytes through the metrics middleware (api/metrics.py), as the rate
        # limit's fields do: Litestar's response headers scan and re-encode the whole list for each one added
        request.scope["state"]["response_headers"] = [(b"etag", etag.encode()), conditional.CACHE_CONTROL_FIELD]
        if conditional.none_match(conditional.if_none_match(request.scope), etag):
            return Response(content=b"", status_code=304, headers=headers or None)
    body = render.availability_answer_bytes(ans.practice, visit_type_id, date, days, ans, state.rendered_days)
    return raw_json(body, 200, headers or None)


def _next_url(path: str, nxt: AvailabilityNextOut, visit_type_id: str, practitioner_id: str | None) -> str:
    """The next page of a cut answer, as a path with its query (the ``Link: <...>; rel="next"`` header)."""
    query = {"date": nxt.date, "days": str(nxt.days), "visit_type_id": visit_type_id}
    if practitioner_id is not None:
        query["practitioner_id"] = practitioner_id
    if nxt.from_ is not None:
        query["from"] = nxt.from_
    return path + "?" + urlencode(query)


def _practice_of_hold(hold_id: str) -> str:
    """The practice of a hold id or of a series id (a series is held, released and booked as one hold)."""
    pid = ids.practice_of(hold_id, "h") or ids.practice_of(hold_id, "s")
    if pid is None:
        raise errors.NotFoundError("hold", hold_id)
    return pid


@post(
    "/v1/holds",
    status_code=201,
    tags=["holds"],
    summary="Hold a slot for HOLD_TTL_SECONDS",
    responses={201: ResponseSpec(HoldOut, description="The hold")},
)
async def hold(
    request: Request[Any, Any, Any], data: JSONBody[HoldIn], idempotency_key: IdemKey = None
) -> Response[bytes]:
    data = await strict(request, HoldIn)
    p, ctx = await caller(request)
    pid = ids.practice_of(data.practitioner_id, "r")
    if pid is None:
        raise errors.NotFoundError("practitioner", data.practitioner_id)
    require_same_practice(p, pid, "practitioner", data.practitioner_id)
    if data.repeat is not None:
        return await _hold_series(request, data, data.repeat, p, ctx, pid, idempotency_key)
    hold_id = ids.new_hold_id(data.practitioner_id)
    await _limited(request, p, "hold", hold_id)
    eng = engine(request)
    try:
        held, replay = await eng.hold(
            data.practitioner_id,
            data.visit_type_id,
            data.start,
            ctx=ctx,
            idem=await idempotency(request, idempotency_key),
            hold_id=hold_id,
        )
    except errors.BookingError:
        await _forget(request, p, hold_id)
        raise
    if replay:
        await _forget(request, p, hold_id)
    body = render.hold_bytes(held, (await eng.cached_practice(pid)).timezone)
    return raw_json(body, 201, {"Idempotent-Replayed": "true"} if replay else None)


async def _hold_series(
    request: Request[Any, Any, Any],
    data: HoldIn,
    repeat: RepeatIn,
    p: Principal,
    ctx: Ctx,
    pid: str,
    idempotency_key: str | None,
) -> Response[bytes]:
    """A hold with ``repeat``: every occurrence held or none (engine/series.py); the series counts as one hold
    against a public client's cap."""
    series_id = ids.new_series_id(data.practitioner_id)
    await _limited(request, p, "hold", series_id)
    eng = engine(request)
    try:
        held, replay = await eng.hold_series(
            data.practitioner_id, data.visit_type_id, data.start, repeat.every_days, repeat.count, ctx=ctx,
            idem=await idempotency(request, idempotency_key), series_id=series_id,
        )  # fmt: skip
    except errors.BookingError:
        await _forget(request, p, series_id)
        raise
    if replay:
        await _forget(request, p, series_id)
    body = msgspec.json.encode(render.series_hold_out(held, (await eng.cached_practice(pid)).timezone))
    headers = {"Location": f"/v1/holds/{held.id}"}
    if replay:
        headers["Idempotent-Replayed"] = "true"
    return raw_json(body, 201, headers)


@get("/v1/holds/{hold_id:str}", tags=["holds"], summary="Read a live hold (or a held series)")
async def get_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> HoldOut | SeriesHoldOut:
    p, _ = await caller(request)
    require_same_practice(p, _practice_of_hold(hold_id), "hold", hold_id)
    eng = engine(request)
    if ids.practice_of(hold_id, "s") is not None:
        series = await eng.get_series_hold(hold_id)
        if series.state == "booked":
            raise errors.HoldUsedError(hold_id, None)
        if series.state != "held":
            raise errors.HoldExpiredError(hold_id, series.state)
        return render.series_hold_out(series, (await eng.cached_practice(series.practice_id)).timezone)
    hold = await eng.get_hold(hold_id)
    if hold.state == "booked":
        raise errors.HoldUsedError(hold_id, hold.appointment_id)
    if hold.state != "held":
        raise errors.HoldExpiredError(hold_id, hold.state)
    practice = await eng.cached_practice(hold.practice_id)
    return render.hold_out(hold, practice.timezone)


@delete("/v1/holds/{hold_id:str}", status_code=204, tags=["holds"], summary="Release a hold at once")
async def release_hold(request: Request[Any, Any, Any], hold_id: FromPath[str]) -> None:
    p, ctx = await caller(request)
    require_same_practice(p, _practice_of_hold(hold_id), "hold", hold_id)
    if ids.practice_of(hold_id, "s") is not None:
        await engine(request).release_series(hold_id, ctx)
    else:
        await engine(request).release_hold(hold_id, ctx)
    await _forget(request, p, hold_id)


@post(
    "/v1/appointments",
    status_code=201,
    tags=["appointments"],
    summary="Book a held slot",
    responses={201: ResponseSpec(AppointmentOut, description="The appointment, with its manage_token")},
)
async def book(
    request: Request[Any, Any, Any], data: JSONBody[BookIn], idempotency_key: IdemKey = None
) -> Response[bytes]:
    data = await strict(request, BookIn)
    p, ctx = await caller(request)
    require_same_practice(p, _practice_of_hold(data.hold_id), "hold", data.hold_id)
    patient = patient_record(data.patient)
    quota = await _limited(request, p, "book", forget=data.hold_id)  # booking it makes room in the client's cap
    eng = engine(request)
    if ids.practice_of(data.hold_id, "s") is not None:  # a series: every occurrence booked at once
        try:
            series, replay = await eng.book_series(
                data.hold_id, patient, ctx=ctx, idem=await idempotency(request, idempotency_key)
            )
        except Exception:
            await booked(request, p, data.hold_id, quota, ok=False)
            raise
        await booked(request, p, data.hold_id, quota, ok=True)
        body = msgspec.json.encode(render.series_out(series, (await eng.cached_practice(series.practice_id)).timezone))
        headers = {"Location": f"/v1/series/{series.series_id}"}
        if replay:
            headers["Idempotent-Replayed"] = "true"
        return raw_json(body, 201, headers)
    try:
        appt, replay = await eng.book(data.hold_id, patient, ctx=ctx, idem=await idempotency(request, idempotency_key))
    except Exception:
        await booked(request, p, data.hold_id, quota, ok=False)
        raise
    await booked(request, p, data.hold_id, quota, ok=True)
    body = render.appointment_bytes(appt, (await eng.cached_practice(appt.practice_id)).timezone)
    return raw_json(body, 201, {"Idempotent-Replayed": "true"} if replay else None)


async def _authorised(
    request: Request[Any, Any, Any], appointment_id: FromPath[str], hold_id: str | None = None
) -> tuple[Found, str]:
    """The appointment as read (with ``hold_id``'s interval, a reschedule's target, in the same round trip), once
    the caller may see it, and its practice's time zone. A cancel or reschedule goes on from this read."""
    p, _ = await caller(request)
    eng = engine(request)
    found = await eng.find_appointment(appointment_id, hold_id)
    try:
        require_appointment(p, found.appointment.practice_id, found.manage_hash)
    except errors.NotFoundError:
        raise errors.NotFoundError("appointment", appointment_id) from None
    practice = await eng.cached_practice(found.appointment.practice_id)
    return found, practice.timezone


@get("/v1/appointments/{appointment_id:str}", tags=["appointments"], summary="Read an appointment")
async def get_appointment(request: Request[Any, Any, Any], appointment_id: FromPath[str]) -> AppointmentOut:
    found, tz = await _authorised(request, appointment_id)
    return render.appointment_out(found.appointment, tz)


@post(
    "/v1/appointments/{appointment_id:str}/cancel",
    status_code=200,
    tags=["appointments"],
    summary="Cancel an appointment (idempotent)",
)
async def cancel(
    request: Request[Any, Any, Any], appointment_id: FromPath[str], data: JSONBody[CancelIn | None] = None
) -> AppointmentOut:
    data = await strict(request, CancelIn) if await request.body() else None
    _, ctx = await caller(request)
    found, tz = await _authorised(request, appointment_id)
    appt = await engine(request).cancel(appointment_id, (data.reason if data else None) or "", ctx, found)
    return render.appointment_out(appt, tz)


@post(
    "/v1/appointments/{appointment_id:str}/reschedule",
    status_code=200,
    tags=["appointments"],
    summary="Move an appointment onto a live hold of the same practice, atomically (version + 1)",
)
async def reschedule(
    request: Request[Any, Any, Any], appointment_id: FromPath[str], data: JSONBody[RescheduleIn]
) -> AppointmentOut:
    data = await strict(request, RescheduleIn)
    p, ctx = await caller(request)
    found, tz = await _authorised(request, appointment_id, data.hold_id)
    appt = await engine(request).reschedule(appointment_id, data.hold_id, ctx, found)
    await _forget(request, p, data.hold_id)
    return render.appointment_out(appt, tz)


@get(
    "/v1/appointments/{appointment_id:str}/notifications",
    tags=["appointments"],
    summary="Confirmation, reminders and cancellation notice of an appointment, with their delivery status",
)
async def list_notifications(request: Request[Any, Any, Any], appointment_id: FromPath[str]) -> NotificationList:
    _, tz = await _authorised(request, appointment_id)
    rows = await asyncio.to_thread(notification_rows, request.app.state.db, appointment_id)
    return NotificationList(
        items=[
            NotificationOut(
                kind=r["kind"],
                status=r["status"],
                due_at=render.instant_ms(r["due_at_ms"], tz),
                sent_at=render.instant_ms(r["sent_at_ms"], tz) if r["sent_at_ms"] else None,
                version=r["version"],
                offset_seconds=r["offset_s"] if r["kind"] == "reminder" else None,
                attempts=r["attempts"],
                last_error=r["last_error"],
            )
            for r in rows
        ]
    )


async def _series(request: Request[Any, Any, Any], series_id: str) -> tuple[SeriesBooking, str]:
    """A booked series, once the caller may see it (the admin, staff of its practice, or the patient holding its
    manage token), and its practice's time zone."""
    p, _ = await caller(request)
    if ids.practice_of(series_id, "s") is None:
        raise errors.NotFoundError("series", series_id)
    eng = engine(request)
    series, manage_hash = await eng.get_series(series_id)
    try:
        require_appointment(p, series.practice_id, manage_hash)
    except errors.NotFoundError:
        raise errors.NotFoundError("series", series_id) from None
    return series, (await eng.cached_practice(series.practice_id)).timezone


@get("/v1/series/{series_id:str}", tags=["appointments"], summary="Read a booked series and its occurrences")
async def get_series(request: Request[Any, Any, Any], series_id: FromPath[str]) -> SeriesOut:
    series, tz = await _series(request, series_id)
    return render.series_out(series, tz)


@post(
    "/v1/series/{series_id:str}/cancel",
    status_code=200,
    tags=["appointments"],
    summary="Cancel the occurrences of a series still ahead (idempotent)",
)
async def cancel_series(
    request: Request[Any, Any, Any], series_id: FromPath[str], data: JSONBody[CancelIn | None] = None
) -> SeriesOut:
    data = await strict(request, CancelIn) if await request.body() else None
    _, ctx = await caller(request)
    _, tz = await _series(request, series_id)
    series = await engine(request).cancel_series(series_id, (data.reason if data else None) or "", ctx)
    return render.series_out(series, tz)


ROUTES = [
    availability,
    hold,
    get_hold,
    release_hold,
    book,
    get_appointment,
    cancel,
    reschedule,
    list_notifications,
    get_series,
    cancel_series,
]
