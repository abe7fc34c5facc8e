"""Practices, practitioners, visit types and schedules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from api.auth import require_admin, require_setup
from api.routes.common import caller, engine, strict
from api.schemas import (
    PracticeIn,
    PracticeOut,
    PractitionerIn,
    PractitionerList,
    PractitionerOut,
    ScheduleOut,
    VisitTypeChanged,
    VisitTypeIn,
    VisitTypeList,
    VisitTypeOut,
    VisitTypePatch,
)
from engine import access, ids
from engine.errors import NotFoundError
from engine.model import Schedule, VisitType


def _practice_of(practitioner_id: FromPath[str]) -> str:
    pid = ids.practice_of(practitioner_id, "r")
    if pid is None:
        raise NotFoundError("practitioner", practitioner_id)
    return pid


@post("/v1/practices", status_code=201, tags=["setup"], summary="Create a practice")
async def create_practice(request: Request[Any, Any, Any], data: JSONBody[PracticeIn]) -> PracticeOut:
    data = await strict(request, PracticeIn)
    p, ctx = await caller(request)
    require_setup(p)
    practice = await engine(request).create_practice(data.name, data.timezone, ctx, data.language)
    return PracticeOut(id=practice.id, name=practice.name, timezone=practice.timezone, language=practice.language)


@get("/v1/practices/{practice_id:str}", tags=["setup"], summary="Read a practice")
async def get_practice(request: Request[Any, Any, Any], practice_id: FromPath[str]) -> PracticeOut:
    await caller(request, practice_id)  # an unknown token is refused even where none is needed
    practice = await engine(request).get_practice(practice_id)
    return PracticeOut(id=practice.id, name=practice.name, timezone=practice.timezone, language=practice.language)


@post("/v1/practices/{practice_id:str}/practitioners", status_code=201, tags=["setup"], summary="Add a practitioner")
async def add_practitioner(
    request: Request[Any, Any, Any], practice_id: FromPath[str], data: JSONBody[PractitionerIn]
) -> PractitionerOut:
    data = await strict(request, PractitionerIn)
    p, ctx = await caller(request)
    require_setup(p, practice_id)
    pr = await engine(request).add_practitioner(practice_id, data.name, ctx)
    return PractitionerOut(id=pr.id, practice_id=pr.practice_id, name=pr.name)


@get("/v1/practices/{practice_id:str}/practitioners", tags=["setup"], summary="List practitioners")
async def list_practitioners(request: Request[Any, Any, Any], practice_id: FromPath[str]) -> PractitionerList:
    await caller(request, practice_id)  # an unknown token is refused even where none is needed
    items = await engine(request).list_practitioners(practice_id)
    return PractitionerList(items=[PractitionerOut(id=x.id, practice_id=x.practice_id, name=x.name) for x in items])


@get("/v1/practitioners/{practitioner_id:str}", tags=["setup"], summary="Read a practitioner")
async def get_practitioner(request: Request[Any, Any, Any], practitioner_id: FromPath[str]) -> PractitionerOut:
    """Where the 201 of ``POST .../practitioners`` points (its ``Location``); readable as the list is."""
    await caller(request, _practice_of(practitioner_id))  # an unknown token is refused even where none is needed
    pr = await engine(request).get_practitioner(practitioner_id)
    return PractitionerOut(id=pr.id, practice_id=pr.practice_id, name=pr.name)


@post("/v1/practices/{practice_id:str}/visit-types", status_code=201, tags=["setup"], summary="Add a visit type")
async def add_visit_type(
    request: Request[Any, Any, Any], practice_id: FromPath[str], data: JSONBody[VisitTypeIn]
) -> VisitTypeOut:
    data = await strict(request, VisitTypeIn)
    p, ctx = await caller(request)
    require_setup(p, practice_id)
    vt = await engine(request).add_visit_type(
        practice_id,
        data.name,
        data.duration_minutes,
        ctx,
        buffer_before_minutes=data.buffer_before_minutes,
        buffer_after_minutes=data.buffer_after_minutes,
        max_per_day=data.max_per_day,
        resource_ids=data.resource_ids,
    )
    return _vt_out(vt)


def _vt_out(vt: VisitType) -> VisitTypeOut:
    return VisitTypeOut(
        id=vt.id,
        practice_id=vt.practice_id,
        name=vt.name,
        duration_minutes=vt.duration_minutes,
        buffer_before_minutes=vt.buffer_before_minutes,
        buffer_after_minutes=vt.buffer_after_minutes,
        max_per_day=vt.max_per_day,
        resource_ids=vt.resource_ids,
    )


@patch(
    "/v1/visit-types/{visit_type_id:str}",
    tags=["setup"],
    summary="Change a visit type's buffers and daily limit; applies to new claims at once, reports conflicts",
)
async def change_visit_type(
    request: Request[Any, Any, Any], visit_type_id: FromPath[str], data: JSONBody[VisitTypePatch]
) -> VisitTypeChanged:
    data = await strict(request, VisitTypePatch)
    pid = ids.practice_of(visit_type_id, "v")
    if pid is None:
        raise NotFoundError("visit type", visit_type_id)
    p, ctx = await caller(request)
    require_setup(p, pid)
    changes = {f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not msgspec.UNSET}
    vt, conflicts = await engine(request).change_visit_type(visit_type_id, changes, ctx)
    out = _vt_out(vt)
    return VisitTypeChanged(**msgspec.structs.asdict(out), conflicts=conflicts)


@get("/v1/visit-types/{visit_type_id:str}", tags=["setup"], summary="Read a visit type")
async def get_visit_type(request: Request[Any, Any, Any], visit_type_id: FromPath[str]) -> VisitTypeOut:
    """Where the 201 of ``POST .../visit-types`` points (its ``Location``); readable as the list is."""
    pid = ids.practice_of(visit_type_id, "v")
    if pid is None:
        raise NotFoundError("visit type", visit_type_id)
    await caller(request, pid)  # an unknown token is refused even where none is needed
    return _vt_out(await engine(request).get_visit_type(visit_type_id))


@get("/v1/practices/{practice_id:str}/visit-types", tags=["setup"], summary="List visit types")
async def list_visit_types(request: Request[Any, Any, Any], practice_id: FromPath[str]) -> VisitTypeList:
    await caller(request, practice_id)  # an unknown token is refused even where none is needed
    items = await engine(request).list_visit_types(practice_id)
    return VisitTypeList(items=[_vt_out(x) for x in items])


def _schedule_out(practitioner_id: FromPath[str], s: Schedule, conflicts: list[str]) -> ScheduleOut:
    return ScheduleOut(
        practitioner_id=practitioner_id,
        weekly=s.weekly,
        closures=s.closures,
        slot_step_minutes=s.slot_step_minutes,
        horizon_days=s.horizon_days,
        min_notice_minutes=s.min_notice_minutes,
        conflicts=conflicts,
    )


@put(
    "/v1/practitioners/{practitioner_id:str}/schedule",
    tags=["setup"],
    summary="Replace a practitioner's weekly schedule; availability is recomputed before the answer",
)
async def put_schedule(
    request: Request[Any, Any, Any], practitioner_id: FromPath[str], data: JSONBody[Schedule]
) -> ScheduleOut:
    data = await strict(request, Schedule)
    p, ctx = await caller(request)
    require_setup(p, _practice_of(practitioner_id))
    conflicts = await engine(request).put_schedule(practitioner_id, data, ctx)
    return _schedule_out(practitioner_id, data, conflicts)


@get("/v1/practitioners/{practitioner_id:str}/schedule", tags=["setup"], summary="Read a schedule")
async def get_schedule(request: Request[Any, Any, Any], practitioner_id: FromPath[str]) -> ScheduleOut:
    p, _ = await caller(request)
    require_setup(p, _practice_of(practitioner_id))
    return _schedule_out(practitioner_id, await engine(request).get_schedule(practitioner_id), [])


class ApiKeyOut(msgspec.Struct):
    id: str
    practice_id: str
    key: str
    created_at: str


@post(
    "/v1/practices/{practice_id:str}/api-keys",
    status_code=201,
    tags=["access"],
    summary="Create a practice staff key (admin only; the key is shown once and stored only as a hash)",
)
async def create_api_key(request: Request[Any, Any, Any], practice_id: FromPath[str]) -> ApiKeyOut:
    p, ctx = await caller(request)
    require_admin(p)
    key, token = await access.create_key(engine(request), practice_id, ctx)
    return ApiKeyOut(
        id=key.id,
        practice_id=practice_id,
        key=token,
        created_at=dt.datetime.fromtimestamp(key.created_ms / 1000, dt.timezone.utc).isoformat(),
    )


@delete(
    "/v1/practices/{practice_id:str}/api-keys/{key_id:str}",
    status_code=204,
    tags=["access"],
    summary="Revoke a staff key at once (admin only)",
)
async def revoke_api_key(request: Request[Any, Any, Any], practice_id: FromPath[str], key_id: FromPath[str]) -> None:
    p, ctx = await caller(request)
    require_admin(p)
    await engine(request).get_practice(practice_id)
    await access.revoke_key(engine(request), practice_id, key_id, ctx)


ROUTES = [
    create_api_key,
    revoke_api_key,
    create_practice,
    get_practice,
    add_practitioner,
    list_practitioners,
    get_practitioner,
    add_visit_type,
    list_visit_types,
    get_visit_type,
    change_visit_type,
    put_schedule,
    get_schedule,
]
