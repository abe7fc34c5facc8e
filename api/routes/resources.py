"""Rooms and equipment of a practice (API.md, "Buffers, daily limits, shared rooms and equipment...")."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post, put
from litestar.params import FromPath, JSONBody

from api.auth import require_setup
from api.routes.common import caller, engine, strict
from api.schemas import ResourceClosuresOut, ResourceIn, ResourceList, ResourceOut
from engine.model import Closure, Resource
from engine.resources import resource_practice

Closures = Annotated[list[Closure], msgspec.Meta(max_length=1000)]


def _out(r: Resource) -> ResourceOut:
    return ResourceOut(id=r.id, practice_id=r.practice_id, name=r.name, kind=r.kind)


@post("/v1/practices/{practice_id:str}/resources", status_code=201, tags=["setup"], summary="Add a room or equipment")
async def add_resource(
    request: Request[Any, Any, Any], practice_id: FromPath[str], data: JSONBody[ResourceIn]
) -> ResourceOut:
    data = await strict(request, ResourceIn)
    p, ctx = await caller(request)
    require_setup(p, practice_id)
    return _out(await engine(request).add_resource(practice_id, data.name, data.kind, ctx))


@get("/v1/practices/{practice_id:str}/resources", tags=["setup"], summary="List rooms and equipment")
async def list_resources(request: Request[Any, Any, Any], practice_id: FromPath[str]) -> ResourceList:
    p, _ = await caller(request)
    require_setup(p, practice_id)
    return ResourceList(items=[_out(r) for r in await engine(request).list_resources(practice_id)])


@put(
    "/v1/resources/{resource_id:str}/closures",
    tags=["setup"],
    summary="Replace a resource's closures; reports the booked appointments that now claim it inside one",
)
async def put_resource_closures(
    request: Request[Any, Any, Any], resource_id: FromPath[str], data: JSONBody[Closures]
) -> ResourceClosuresOut:
    pid = resource_practice(resource_id)
    p, ctx = await caller(request)
    require_setup(p, pid)  # before the body: an unauthorised caller learns nothing from a 422
    data = await strict(request, Closures)
    r, conflicts = await engine(request).put_resource_closures(resource_id, data, ctx)
    return ResourceClosuresOut(**msgspec.structs.asdict(_out(r)), closures=r.closures, conflicts=conflicts)


ROUTES = [add_resource, list_resources, put_resource_closures]
