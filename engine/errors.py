"""Domain errors with typed fields. The API maps each to one HTTP problem (api/problems.py)."""

from __future__ import annotations


class BookingError(Exception):
    code = "booking_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(BookingError):
    code = "not_found"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} does not exist")
        self.kind = kind
        self.ident = ident


class InvalidRequestError(BookingError):
    code = "validation_error"


class UnknownTimezoneError(InvalidRequestError):
    code = "unknown_timezone"


class SlotUnavailableError(BookingError):
    code = "slot_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"that interval is not offered right now ({reason})")
        self.reason = reason


class HoldExpiredError(BookingError):
    code = "hold_expired"

    def __init__(self, hold_id: str, state: str) -> None:
        super().__init__(f"hold {hold_id!r} is no longer live ({state})")
        self.hold_id = hold_id
        self.state = state


class HoldUsedError(BookingError):
    code = "hold_used"

    def __init__(self, hold_id: str, appointment_id: str | None) -> None:
        super().__init__(f"hold {hold_id!r} was already booked")
        self.hold_id = hold_id
        self.appointment_id = appointment_id


class AppointmentCancelledError(BookingError):
    code = "appointment_cancelled"

    def __init__(self, appointment_id: str) -> None:
        super().__init__(f"appointment {appointment_id!r} is cancelled")
        self.appointment_id = appointment_id


class AppointmentArchivedError(BookingError):
    """An appointment that ended more than the retention period ago: it lives only in the database (read-only)."""

    code = "appointment_archived"

    def __init__(self, appointment_id: str) -> None:
        super().__init__(
            f"appointment {appointment_id!r} ended more than the retention period ago and is kept only in the "
            "database: it can be read, not changed"
        )
        self.appointment_id = appointment_id


class IdempotencyKeyReusedError(BookingError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used with a different request body")


class StaleScheduleError(BookingError):
    code = "schedule_changed"

    def __init__(self) -> None:
        super().__init__("the schedule was changed concurrently; retry")


class NoOfferError(BookingError):
    """A waitlist entry that holds no live offer was asked to accept or decline one (API.md: 409 no_offer)."""

    code = "no_offer"

    def __init__(self, entry_id: str, status: str) -> None:
        super().__init__(f"waitlist entry {entry_id!r} holds no offer ({status})")
        self.entry_id = entry_id
        self.status = status


class OfferExpiredError(BookingError):
    """The entry's last offer lapsed (API.md: 410 offer_expired)."""

    code = "offer_expired"

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"the offer of waitlist entry {entry_id!r} lapsed; the entry waits for the next one")
        self.entry_id = entry_id


class OfferHoldError(BookingError):
    """A waitlist offer's hold released by someone other than its entry or staff (403 forbidden): the entry's
    decline (with its manage token) gives an offer up (docs/waitlist.md)."""

    code = "forbidden"

    def __init__(self, hold_id: str) -> None:
        super().__init__(
            f"hold {hold_id!r} is a waitlist offer: only its entry (decline, with the manage token) or staff may "
            "release it"
        )
        self.hold_id = hold_id


class WaitlistFullError(BookingError):
    """The practice holds as many live waitlist entries as it may (WAITLIST_MAX_PER_PRACTICE): 409 waitlist_full."""

    code = "waitlist_full"

    def __init__(self, cap: int) -> None:
        super().__init__(f"the practice's waitlist is full ({cap} live entries); try again later or call the practice")
        self.cap = cap


class WaitlistClientFullError(BookingError):
    """One public client (or app end user) holds as many live entries on the practice's waitlist as it may
    (WAITLIST_MAX_PER_CLIENT): 429 too_many_entries, with Retry-After."""

    code = "too_many_entries"
    retry_after_s = 60

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"this client already has {cap} live entries on this practice's waitlist: leave one (or let one end) first"
        )
        self.cap = cap


class OfferKitError(BookingError):
    """Entries wait and a freeing call carried no waitlist kit, or one without every visit type of the practice:
    nothing changed; the engine reads the visit types again and retries (docs/waitlist.md)."""

    code = "schedule_changed"

    def __init__(self) -> None:
        super().__init__("the practice's visit types changed concurrently; retry")


class LimitExceededError(BookingError):
    """A public client went over an abuse limit (API.md: 429 with Retry-After)."""

    code = "rate_limited"

    def __init__(self, detail: str, retry_after_s: int, limit: int = 0) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.limit = limit  # the limit it went over (RateLimit-Limit of the 429); 0: not known

    @classmethod
    def rate(cls, per_minute: int, action: str, retry_after_ms: int) -> LimitExceededError:
        return cls(
            f"more than {per_minute} {action} requests in a minute from this client", _s(retry_after_ms), per_minute
        )

    @classmethod
    def holds(cls, cap: int, retry_after_ms: int) -> LimitExceededError:
        return cls(f"this client already has {cap} live holds; book or release one first", _s(retry_after_ms), cap)


def _s(ms: int) -> int:
    """Milliseconds to wait as whole seconds of Retry-After, rounded up, at least 1."""
    return max(1, -(-int(ms) // 1000))


seconds_up = _s


class ReplicaUnconfirmedError(BookingError):
    """A change stored on its shard's primary that no replica confirmed in time (Redis Cluster, WAIT)."""

    code = "dependency_unavailable"

    def __init__(self, script: str, wait_ms: int) -> None:
        super().__init__(
            f"the {script} was stored, but no replica confirmed it within {wait_ms} ms: it stands, and a retry "
            "(with the same Idempotency-Key for a booking) answers it"
        )
        self.script = script
        self.wait_ms = wait_ms


class OverlapDetectedError(BookingError):
    """A booked claim overlapping another booked claim: a bug guard, never expected."""

    code = "overlap_detected"


class SeriesUnavailableError(SlotUnavailableError):
    """A series hold refused: ``unavailable`` names the start (RFC 3339, the practice's offset) of each occurrence
    that is not offered right now (nothing was held)."""

    def __init__(self, unavailable: list[str]) -> None:
        super().__init__(f"{len(unavailable)} occurrence(s) of the series")
        self.unavailable = unavailable
