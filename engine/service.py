"""BookingEngine: one object for the routes, composed of the engine's concerns (docs/architecture.md).

| concern | module |
|---|---|
| practices, practitioners, visit types | ``engine.catalog`` |
| schedules, materialised days, horizon rolls | ``engine.availability`` |
| search | ``engine.search`` |
| holds | ``engine.holds`` |
| series (held, booked, cancelled together) | ``engine.series`` |
| appointments | ``engine.appointments`` |
| staff keys, abuse limits | ``engine.access`` |
| the waitlist | ``engine.waitlist`` (offers: ``engine.offers``, the kits of the freeing scripts) |

Each concern calls Redis's scripts only through ``engine.scripts``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from engine.appointments import Appointments, patient_ref
from engine.availability import Availability
from engine.catalog import Catalog
from engine.context import AppointmentArchive, Runtime
from engine.holds import Holds
from engine.model import SYSTEM, Ctx, VisitType
from engine.resources import Resources
from engine.search import Search
from engine.search_answer import Answer, SearchResult
from engine.series import Series
from engine.settings import Settings
from engine.waitlist import Waitlist

if TYPE_CHECKING:
    from engine.redis.pipelined import PipelinedReads

__all__ = ["SYSTEM", "Answer", "BookingEngine", "Ctx", "SearchResult", "patient_ref"]


class BookingEngine:
    def __init__(
        self,
        redis: Any,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        archive: AppointmentArchive | None = None,
        reads: PipelinedReads | None = None,
    ) -> None:
        self.rt = rt = Runtime(redis, settings, clock, archive, reads)
        self.redis = redis
        self.settings = settings
        self.lua = rt.lua
        self.now_ms = rt.now_ms
        self.catalog = catalog = Catalog(rt)
        self.availability = availability = Availability(rt, catalog)
        self.holds = holds = Holds(rt, catalog)
        self.appointments = appointments = Appointments(rt, catalog)
        self.resources = resources = Resources(rt, catalog)
        self.add_resource = resources.add
        self.list_resources = resources.list_all
        self.get_resource = resources.get
        self.put_resource_closures = resources.put_closures
        # the routes' one object: every operation, by the name it has in its concern
        self.create_practice = catalog.create_practice
        self.get_practice = catalog.get_practice
        self.cached_practice = catalog.cached_practice
        self.add_practitioner = catalog.add_practitioner
        self.list_practitioners = catalog.list_practitioners
        self.get_practitioner = catalog.get_practitioner
        self.list_visit_types = catalog.list_visit_types
        self.get_visit_type = catalog.get_visit_type
        self.get_schedule = availability.get_schedule
        self.put_schedule = availability.put_schedule
        self.roll_horizon = availability.roll_horizon
        self.searcher = searcher = Search(rt, catalog)
        self.search_availability = searcher.search_availability  # the route's: its audit queued by the engine
        self.search_answer = searcher.answer  # the same answer, its audit event left on it (``audit_call``)
        self.search = searcher.search  # the reference: the script alone, no cache (what the cache is tested against)
        self.hold = holds.hold
        self.get_hold = holds.get_hold
        self.release_hold = holds.release_hold
        self.waitlist = waitlist = Waitlist(rt, catalog, appointments)
        self.join_waitlist = waitlist.join
        self.get_waitlist_entry = waitlist.get
        self.list_waitlist = waitlist.list
        self.accept_offer = waitlist.accept
        self.decline_offer = waitlist.decline
        self.leave_waitlist = waitlist.leave
        self.book = appointments.book
        self.get_appointment = appointments.get_appointment
        self.find_appointment = appointments.find
        self.cancel = appointments.cancel
        self.reschedule = appointments.reschedule
        self.series = series = Series(rt, catalog, holds, appointments)
        self.hold_series = series.hold
        self.get_series_hold = series.get_hold
        self.release_series = series.release
        self.book_series = series.book
        self.get_series = series.get
        self.cancel_series = series.cancel

    async def expire_due_holds(self, limit: int = 200) -> int:
        """The sweeper's tidying: holds past their expiry (their intervals offered to the waitlist first), and
        now and then entries whose window passed dropped from the queues."""
        expired = await self.holds.expire_due_holds(limit)
        await self.waitlist.drop_ended()
        return expired

    async def close(self) -> None:
        """Append what the engine still holds queued (the search audits: bounded by their retries, then counted)."""
        await self.searcher.audits.close()

    @property
    def clock(self) -> Callable[[], float]:
        return self.rt.clock

    async def add_visit_type(
        self, practice_id: str, name: str, minutes: int, ctx: Ctx = SYSTEM, **rules: Any
    ) -> VisitType:
        """``rules``: buffer_before_minutes, buffer_after_minutes, max_per_day, resource_ids (VisitType; an
        unknown resource is InvalidRequestError)."""
        if rules.get("resource_ids"):
            rules["resource_ids"] = await self.resources.check_ids(practice_id, rules["resource_ids"])
        vt = await self.catalog.add_visit_type(practice_id, name, minutes, ctx, **rules)
        await self.availability.offer_visit_type(practice_id, vt)
        return vt

    async def change_visit_type(
        self, visit_type_id: str, changes: dict[str, Any], ctx: Ctx = SYSTEM
    ) -> tuple[VisitType, list[str]]:
        """Change a visit type's buffers and daily limit (``changes``: the fields that change). The claim scripts
        read them at once; each practitioner's offered starts are recomputed (buffers never reach into a closure)
        and the booked appointments the new rules conflict with are reported, never moved."""
        old = await self.catalog.get_visit_type(visit_type_id)
        if "resource_ids" in changes:
            changes["resource_ids"] = await self.resources.check_ids(old.practice_id, changes["resource_ids"] or [])
        vt = msgspec.structs.replace(old, **changes)
        await self.catalog.save_visit_type(vt, ctx)
        await self.availability.offer_visit_type(vt.practice_id, vt)
        return vt, await self.availability.rule_conflicts(vt)
