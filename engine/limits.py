"""The limits the engine enforces and the API states in its OpenAPI document, each written once.

The engine checks them (engine/catalog.py, engine/search.py), api/schemas.py states them in the schema, and
the script loader (engine/scripts/registry.py) defines ``MAX_DURATION_S`` in front of every Lua script.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

MIN_VISIT_MINUTES: Final = 5
"""The shortest visit type (``duration_minutes``)."""
MAX_VISIT_MINUTES: Final = 480
"""The longest visit type: it bounds every overlap look-up of the Lua scripts (see docs/redis-model.md)."""
MAX_VISIT_S: Final = MAX_VISIT_MINUTES * 60

MAX_HORIZON_DAYS: Final = 730
"""The longest horizon a schedule may have (``horizon_days``); a waitlist window reaches no further."""

MIN_SEARCH_DAYS: Final = 1
MAX_SEARCH_DAYS: Final = 31
"""How many local dates one availability search covers (``days``, default 1)."""

SEARCH_FIRST_DATE: Final = dt.date(1971, 1, 1)
SEARCH_LAST_DATE: Final = dt.date(9000, 1, 1)
"""The first and last ``date`` a search accepts: every local day between them has instants that the time
arithmetic (and ``datetime``) can represent in any zone, also with ``days`` added."""


def visit_minutes_ok(minutes: int) -> bool:
    return MIN_VISIT_MINUTES <= minutes <= MAX_VISIT_MINUTES


def search_days_ok(days: int) -> bool:
    return MIN_SEARCH_DAYS <= days <= MAX_SEARCH_DAYS


def search_date_ok(date: dt.date) -> bool:
    return SEARCH_FIRST_DATE <= date <= SEARCH_LAST_DATE


MAX_DURATION_S: Final = MAX_VISIT_S
"""The same bound under the name the Lua scripts use (engine/scripts/registry.py puts it in front of each)."""

MAX_WAITLIST_WINDOW_DAYS: Final = 90
"""A waitlist entry's window (from_date to to_date, inclusive) spans at most this many local dates: longer is a
422. It bounds each entry's members of the offer walk's index (one per UTC day its spans touch)."""

OFFERS_PER_INTERVAL: Final = 4
"""At most this many waitlist offers are made out of one freed interval (each freeing call carries as many fresh
hold ids per interval it frees; lua/_prelude.lua ``offer_freed`` caps each interval, so that when several
intervals are freed in one call, e.g. holds expiring in one sweep, the first cannot take the others' offers)."""

MAX_BUFFER_MINUTES: Final = 120
"""The longest buffer before or after a visit (``buffer_before_minutes``, ``buffer_after_minutes``)."""
MAX_OCCUPATION_S: Final = MAX_VISIT_S + 2 * MAX_BUFFER_MINUTES * 60
"""The longest occupation of a practitioner by one claim (a visit and both its buffers): claims zsets are scored
by the occupation's start, so this bounds every overlap look-up (the Lua scripts get it as ``MAX_OCCUPATION_S``)."""
MIN_PER_DAY: Final = 1
MAX_PER_DAY: Final = 1000
"""``max_per_day`` (per practitioner, visit type and local date; null: no limit)."""


def buffer_minutes_ok(minutes: int) -> bool:
    return 0 <= minutes <= MAX_BUFFER_MINUTES


RESTORE_PAST_DAYS: Final = 30
"""Reconciliation puts back into Redis the appointments that ended at most this many days ago
(persistence/reconcile.py)."""
DEFAULT_APPOINTMENT_RETENTION_DAYS: Final = 90
"""Appointments that ended longer ago leave Redis (persistence/retention.py) and are read from the database.
``APPOINTMENT_RETENTION_DAYS`` is never below ``RESTORE_PAST_DAYS``: a restored appointment is not tidied again."""
DEFAULT_STREAM_GROUP_IDLE_S: Final = 900
"""A consumer group other than the persisters' whose consumers have all been idle this long no longer holds back
the trimming of the event streams (persistence/trimming.py)."""
