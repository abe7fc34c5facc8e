"""Waitlist kits: what every change that frees an interval sends along so that its script offers the interval to
the waitlist first, in the same atomic step (docs/waitlist.md, "Where offers are made")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine import errors, ids, limits, timeutil
from engine.catalog import Catalog
from engine.context import Runtime
from engine.scripts.waitlist import OFFER_IDS, OfferKit

T = TypeVar("T")
KIT_ATTEMPTS = 3
DAY_S = 86400


class Offers:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog

    async def kit(
        self, practice_id: str, practitioner_id: str, intervals: int = 1, fresh: bool = False, others: bool = True
    ) -> OfferKit:
        """A kit for ``intervals`` freed intervals of one practitioner (``OFFER_IDS`` fresh hold ids each). In a
        practice with rooms or equipment it carries every other practitioner too (``OFFER_IDS`` hold ids each, for
        the starts a freed room gives back to them), unless ``others`` is false (a change that frees no room)."""
        s = self.rt.settings
        sharers = await self.catalog.room_sharers(practice_id, fresh) if others else ()
        practice = await self.catalog.cached_practice(practice_id)
        lo = (self.rt.now_ms() // 1000 // DAY_S - 3) * DAY_S  # day-aligned: one table a zone a day (cached)
        zone = timeutil.offset_table(timeutil.zone(practice.timezone), lo, lo + (limits.MAX_HORIZON_DAYS + 7) * DAY_S)
        return OfferKit(
            practitioner_id=practitioner_id,
            visit_types=await self.catalog.visit_type_lengths(practice_id, fresh),
            hold_ids=tuple(ids.new_hold_id(practitioner_id) for _ in range(OFFER_IDS * intervals)),
            offer_ms=s.waitlist_offer_seconds * 1000,
            retention_ms=s.hold_retention_seconds * 1000,
            zone=zone,
            others=tuple(
                (o, tuple(ids.new_hold_id(o) for _ in range(OFFER_IDS))) for o in sharers if o != practitioner_id
            ),
        )

    async def run(
        self,
        practice_id: str,
        practitioner_id: str,
        step: Callable[[OfferKit], Awaitable[T]],
        intervals: int = 1,
        others: bool = True,
    ) -> T:
        """Run a freeing call with a kit; when its script refused the kit (a visit type added meanwhile), again
        with the visit types read afresh. ``others``: as for ``kit``."""
        for attempt in range(KIT_ATTEMPTS):
            try:
                kit = await self.kit(practice_id, practitioner_id, intervals, fresh=attempt > 0, others=others)
                return await step(kit)
            except errors.OfferKitError:
                if attempt == KIT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
