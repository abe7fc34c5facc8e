"""The only door to Lua: one typed async function per script in ``lua/`` (named as the file, its header and its
event), each building KEYS from ``engine.keys`` and ARGV in the order the header states, returning typed values
or raising the domain error of the script's status (``registry.STATUS_ERRORS``).

| script | function | module |
|---|---|---|
| hold, release, expire, book, cancel, reschedule | same names | ``bookings`` |
| search, schedule, apply_day, put_entity, api_key, app_key, limit | same names (``apply_day`` sends many days at once) | ``setup`` |
| restore, restore_seq, restore_waitlist (and put_entity/schedule/api_key in their restore modes) | same names | ``repair`` |
| waitlist_join, waitlist_decline, waitlist_leave (and the kit of every freeing script) | same names | ``waitlist`` |
| tidy, trim, close_gap (what keeps Redis bounded) | same names | ``retention`` |
| series_hold, series_book (a series held, then booked, all or none), restore_series | same names | ``series`` |
| restore, restore_seq (and put_entity/schedule/api_key in their restore modes), lease | same names | ``repair`` |
"""

from engine.scripts.bookings import (
    RETRY,
    Booked,
    NewVersion,
    Replay,
    Retry,
    book,
    book_call,
    cancel,
    cancel_call,
    expire,
    hold,
    hold_call,
    release,
    release_call,
    reschedule,
)
from engine.scripts.registry import NAMES, STATUS_ERRORS, Call, Lua, source
from engine.scripts.repair import (
    Restored,
    add_practice,
    forget_client_hold,
    lease,
    lease_call,
    mark_practice,
    mark_reconciled,
    remember_client_hold,
    restore,
    restore_entity,
    restore_seq,
    restore_waitlist,
    trim_past,
)
from engine.scripts.retention import Tidied, close_gap, close_gap_call, tidy, tidy_call, trim, trim_call
from engine.scripts.series import Occurrence, Refused, restore_series, series_book, series_hold
from engine.scripts.setup import (
    DayPlan,
    Found,
    RosterChanged,
    api_key,
    app_key,
    apply_day,
    limit,
    put_entity,
    schedule,
    search,
    search_call,
)
from engine.scripts.waitlist import (
    OFFER_IDS,
    Left,
    OfferKit,
    drop_from_queue,
    waitlist_counters,
    waitlist_decline,
    waitlist_join,
    waitlist_leave,
    waitlist_offer_free,
    waitlist_reindex,
    waitlist_tidy,
    waitlist_tidy_call,
)

__all__ = [
    "NAMES",
    "OFFER_IDS",
    "RETRY",
    "STATUS_ERRORS",
    "Booked",
    "Call",
    "DayPlan",
    "Found",
    "Left",
    "Lua",
    "NewVersion",
    "Occurrence",
    "OfferKit",
    "Refused",
    "Replay",
    "Restored",
    "Retry",
    "RosterChanged",
    "Tidied",
    "add_practice",
    "api_key",
    "app_key",
    "apply_day",
    "book",
    "book_call",
    "cancel",
    "cancel_call",
    "close_gap",
    "close_gap_call",
    "drop_from_queue",
    "expire",
    "forget_client_hold",
    "hold",
    "hold_call",
    "lease",
    "lease_call",
    "limit",
    "mark_practice",
    "mark_reconciled",
    "put_entity",
    "release",
    "release_call",
    "remember_client_hold",
    "reschedule",
    "restore",
    "restore_entity",
    "restore_seq",
    "restore_series",
    "restore_waitlist",
    "schedule",
    "search",
    "search_call",
    "series_book",
    "series_hold",
    "source",
    "tidy",
    "tidy_call",
    "trim",
    "trim_call",
    "trim_past",
    "waitlist_counters",
    "waitlist_decline",
    "waitlist_join",
    "waitlist_leave",
    "waitlist_offer_free",
    "waitlist_reindex",
    "waitlist_tidy",
    "waitlist_tidy_call",
]
