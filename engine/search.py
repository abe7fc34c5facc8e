"""Search: free slots of one visit type over a range of the practice's local dates."""

from __future__ import annotations

import datetime as dt

import msgspec

from engine import errors, ids, limits, scripts, timeutil
from engine.catalog import Catalog
from engine.context import Runtime
from engine.model import SYSTEM, Ctx, Practice, Slot

SEARCH_FIRST_DATE = dt.date(1971, 1, 1)
SEARCH_LAST_DATE = dt.date(9000, 1, 1)


class SearchResult(msgspec.Struct, frozen=True):
    """Free slots, sorted by start then practitioner id, packed as ``start * len(practitioner_ids) + index``
    (one integer sort instead of thousands of objects; see ``slots()`` for the plain form)."""

    practitioner_ids: list[str]
    duration_s: int
    packed: list[int]

    def slots(self) -> list[Slot]:
        n = len(self.practitioner_ids)
        return [Slot(self.practitioner_ids[v % n], v // n, v // n + self.duration_s) for v in self.packed]

    def __len__(self) -> int:
        return len(self.packed)


def _order(found: list[list[int]], n: int) -> list[int]:
    """Merge the per-practitioner start lists (practitioner ids sorted) into one sorted packed list."""
    packed = [s * n + i for i, starts in enumerate(found) for s in starts]
    packed.sort()
    return packed


class Search:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog

    async def search(
        self,
        practice_id: str,
        date: dt.date,
        days: int,
        visit_type_id: str,
        practitioner_id: str | None = None,
        ctx: Ctx = SYSTEM,
    ) -> tuple[Practice, SearchResult]:
        if ids.practice_of(practice_id, "p") is None:
            raise errors.NotFoundError("practice", practice_id)
        if not (SEARCH_FIRST_DATE <= date <= SEARCH_LAST_DATE):
            raise errors.InvalidRequestError(f"date must lie between {SEARCH_FIRST_DATE} and {SEARCH_LAST_DATE}")
        if not 1 <= days <= limits.MAX_SEARCH_DAYS:
            raise errors.InvalidRequestError(f"days must be 1 to {limits.MAX_SEARCH_DAYS}")
        practice, vt, prac_ids = await self.catalog.search_context(practice_id, visit_type_id, practitioner_id)
        tz = timeutil.zone(practice.timezone)
        dur = vt.duration_minutes * 60
        call = scripts.search_call(
            now_ms=self.rt.now_ms(),
            practice_id=practice_id,
            practitioner_ids=prac_ids,
            visit_type_id=vt.id,
            start=timeutil.day_bounds(date, tz)[0],
            end=timeutil.day_bounds(date + dt.timedelta(days=days - 1), tz)[1],
            duration_s=dur,
            detail={"date": date.isoformat(), "days": days, "visit_type_id": vt.id, "practitioner_id": practitioner_id},
            audit=self.rt.settings.audit_searches,
            ctx=ctx,
        )
        found = await scripts.search(self.rt.lua, call)
        return practice, SearchResult(prac_ids, dur, _order(found, len(prac_ids)))
