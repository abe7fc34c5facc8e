"""What a booking, rescheduling or cancellation means for notifications, whichever way the outbox learnt of it."""

from __future__ import annotations

import msgspec

from engine import events as ev


class Change(msgspec.Struct, frozen=True):
    """From a stream event (``of``) or, when the outbox catches up on entries trimmed while no worker ran, from the
    appointment's row in the database (persistence/notify/catchup.py)."""

    appointment_id: str
    practice_id: str
    kind: str  # 'book', 'reschedule' or 'cancel'
    version: int
    start_s: int
    at: int  # ms: when the change was made (the confirmation's due time; reminders already past are skipped)

    @classmethod
    def of(cls, e: ev.AppointmentEvent) -> Change:
        start = 0 if isinstance(e, ev.AppointmentCancelled) else e.data.start
        return cls(e.appointment_id, e.practice_id, str(e.__struct_config__.tag), e.data.version, start, e.at)
