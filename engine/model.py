"""Domain records (msgspec Structs) shared by the engine, the API and the persister."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from engine import timeutil

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Language = Literal["en", "fr", "de", "es", "it", "nl"]
"""The languages notices are written in (BCP 47 primary tags; engine/notices.py)."""
AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
# Every text field of a request refuses control characters (issue 22: PostgreSQL refuses NUL in text, and a
# CR/LF in a name or an address is a header injection in a mail). The patterns are published in the OpenAPI
# document and read the same in ECMA-262 and Python: they end in ``$(?!\n)``, not in ``$`` alone, which Python
# also matches before a final newline ("Ada\n" would pass).
_END = r"$(?!\n)"
CONTROLS = r"\x00-\x1f\x7f"  # C0 controls and DEL
LINE_PATTERN = rf"^[^{CONTROLS}]*{_END}"
"""One line of text: no control character at all (names, ids)."""
FREE_TEXT_PATTERN = rf"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*{_END}"
"""Longer free text (a cancel reason, a closure's reason): tab, LF and CR allowed, no other control character."""
HHMM = Annotated[str, msgspec.Meta(pattern=rf"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00){_END}")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=LINE_PATTERN)]
FreeText = Annotated[str, msgspec.Meta(max_length=500, pattern=FREE_TEXT_PATTERN)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=LINE_PATTERN)]
# Python's ``\s`` spelled out: the OpenAPI document publishes the pattern, and clients read it as ECMA-262, whose
# ``\s`` is another set (it lacks \x1c-\x1f and \x85). Same accepted e-mails as ``^[^@\s]+@[^@\s]+$``.
_SPACE = r"\x09-\x0d\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
EMAIL_PATTERN = rf"^[^@{_SPACE}]+@[^@{_SPACE}]+$"
"""A stored patient's e-mail (``Patient``: read as written)."""
EMAIL_IN_PATTERN = rf"^[^@{_SPACE}{CONTROLS}]+@[^@{_SPACE}{CONTROLS}]+{_END}"
"""A requested patient's e-mail (``PatientIn``): the same, less any control character."""
PHONE_PATTERN = rf"^[0-9+()\-. ]*{_END}"


class WeeklyWindow(msgspec.Struct, forbid_unknown_fields=True):
    day: Weekday
    start: HHMM
    end: HHMM

    def __post_init__(self) -> None:
        if timeutil.parse_hhmm(self.end) <= timeutil.parse_hhmm(self.start):
            raise ValueError(f"window on {self.day} must end after it starts ({self.start}-{self.end})")


class Closure(msgspec.Struct, forbid_unknown_fields=True):
    start: AwareDatetime
    end: AwareDatetime
    reason: FreeText | None = None  # free text: no control character but tab, LF and CR

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("closure must end after it starts")


class Schedule(msgspec.Struct, forbid_unknown_fields=True):
    weekly: Annotated[list[WeeklyWindow], msgspec.Meta(max_length=500)]
    closures: Annotated[list[Closure], msgspec.Meta(max_length=1000)] = []
    slot_step_minutes: Annotated[int, msgspec.Meta(ge=1, le=240)] = 15
    horizon_days: Annotated[int, msgspec.Meta(ge=1, le=730)] = 90  # engine.limits.MAX_HORIZON_DAYS
    min_notice_minutes: Annotated[int, msgspec.Meta(ge=0, le=525_600)] = 0

    def windows_for(self, weekday: int) -> list[tuple[int, int]]:
        name = timeutil.WEEKDAYS[weekday]
        return [(timeutil.parse_hhmm(w.start), timeutil.parse_hhmm(w.end)) for w in self.weekly if w.day == name]

    def closure_spans(self) -> list[tuple[int, int]]:
        return [(timeutil.to_epoch(c.start), timeutil.to_epoch(c.end)) for c in self.closures]

    def covers(self, start: int, end: int, tz_name: str) -> bool:
        """Does this schedule offer the whole interval [start, end) (used to report conflicts)?"""
        tz = timeutil.zone(tz_name)
        if any(start < c_end and end > c_start for c_start, c_end in self.closure_spans()):
            return False
        day = timeutil.local_date_of(start, tz)
        for w_start, w_end in self.windows_for(day.weekday()):
            begin = timeutil.wall_to_epoch(day, w_start, tz, is_end=False)
            finish = timeutil.wall_to_epoch(day, w_end, tz, is_end=True)
            if begin <= start and end <= finish:
                return True
        return False


class _StoredClosure(msgspec.Struct, forbid_unknown_fields=True):
    start: AwareDatetime
    end: AwareDatetime
    reason: str | None = None


class _StoredSchedule(msgspec.Struct, forbid_unknown_fields=True):
    weekly: list[WeeklyWindow]
    closures: list[_StoredClosure] = []
    slot_step_minutes: int = 15
    horizon_days: int = 90
    min_notice_minutes: int = 0


def stored_schedule(raw: bytes | str) -> Schedule:
    """A schedule as Redis or the database holds it, read as it was written: a closure reason that an older
    version let in (a control character) does not make it unreadable. (Constructing a Struct checks no
    constraint; ``__post_init__`` still runs.)"""
    s = msgspec.json.decode(raw, type=_StoredSchedule)
    closures = [Closure(start=c.start, end=c.end, reason=c.reason) for c in s.closures]
    return Schedule(
        weekly=s.weekly,
        closures=closures,
        slot_step_minutes=s.slot_step_minutes,
        horizon_days=s.horizon_days,
        min_notice_minutes=s.min_notice_minutes,
    )


ResourceKind = Literal["room", "equipment"]


class Resource(msgspec.Struct):
    """A room or a piece of equipment of a practice, shared by all its practitioners; ``closures`` take it out of
    use (the claim scripts read them from Redis, lua/_prelude.lua ``res_*``)."""

    id: str
    practice_id: str
    name: str
    kind: str  # a ResourceKind
    closures: list[Closure] = []
    spans: list[list[int]] = []  # the closures as [start_s, end_s] (what the Lua scripts read), kept by the engine

    def closure_spans(self) -> list[list[int]]:
        return [[timeutil.to_epoch(c.start), timeutil.to_epoch(c.end)] for c in self.closures]


class Ctx(msgspec.Struct, frozen=True):
    """Who asks, and the request id that ties the audit row to the HTTP request."""

    actor: str = "system"
    request_id: str = ""
    # admin, practice staff or the engine itself: may book, release or reschedule onto a waitlist offer's hold
    # directly; public clients, app keys and patients (False) only through the entry (accept, decline)
    privileged: bool = True


SYSTEM = Ctx()


class Practice(msgspec.Struct):
    id: str
    name: str
    timezone: str
    language: str = "en"  # notices to patients who chose none (a Language)


class Practitioner(msgspec.Struct):
    id: str
    practice_id: str
    name: str


class VisitType(msgspec.Struct):
    """``buffer_*_minutes``: how long the practitioner stays occupied before and after each visit of this type;
    ``max_per_day``: at most this many live claims (holds and bookings) per practitioner and local date (None: no
    limit). The claim scripts read them from Redis (lua/_prelude.lua, vt_rules): a change applies at once."""

    id: str
    practice_id: str
    name: str
    duration_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    max_per_day: int | None = None
    resource_ids: list[str] = []  # rooms and equipment each visit needs, all of them (sorted; Resource ids)

    @property
    def buffers_s(self) -> tuple[int, int]:
        return self.buffer_before_minutes * 60, self.buffer_after_minutes * 60


class Patient(msgspec.Struct, forbid_unknown_fields=True):
    """A patient as stored (Redis, the streams, the database) and answered: read as written, with the constraints
    every version checked, so what an older version let in (a control character) stays readable."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=EMAIL_PATTERN)]
    phone: Annotated[str, msgspec.Meta(max_length=40, pattern=r"^[0-9+()\-. ]*$")] | None = None
    language: Language | msgspec.UnsetType = msgspec.UNSET  # the notices' language (else the practice's)


class PatientIn(Patient):
    """A patient as a request gives it (a booking, a waitlist join): no control character anywhere. The engine
    stores it as a ``Patient`` (``patient_record``)."""

    name: Name
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=EMAIL_IN_PATTERN)]
    phone: Annotated[str, msgspec.Meta(max_length=40, pattern=PHONE_PATTERN)] | None = None


def patient_record(p: Patient) -> Patient:
    """The patient a request gave (a ``PatientIn``) as the records hold it: a plain ``Patient``."""
    return p if type(p) is Patient else Patient(name=p.name, email=p.email, phone=p.phone, language=p.language)


class Slot(msgspec.Struct, array_like=False):
    practitioner_id: str
    start: int
    end: int


class Hold(msgspec.Struct):
    id: str
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    start: int
    end: int
    expires_at_ms: int
    state: str
    appointment_id: str | None = None


class AppointmentCore(msgspec.Struct):
    """What every form of an appointment carries: the engine's record below, the stream's
    (engine.events.AppointmentRecord)."""

    id: str
    status: str
    version: int
    practice_id: str
    practitioner_id: str
    visit_type_id: str
    start: int
    end: int
    patient: Patient


class Appointment(AppointmentCore):
    manage_token: str | None = None
    hold_id: str | None = None
    cancel_reason: str | None = None


class AppKey(msgspec.Struct):
    """An app key: a consumer booking app's backend acting for its end users as a public client would, for the
    listed practices (None: all). Only its SHA-256 is ever stored."""

    id: str
    name: str
    practice_ids: list[str] | None
    hash: str
    created_ms: int


class ApiKey(msgspec.Struct):
    """A practice staff API key: only its SHA-256 is ever stored."""

    id: str
    practice_id: str
    hash: str
    created_ms: int


class WaitlistOffer(msgspec.Struct):
    """A live offer: an exclusive hold of the entry (docs/waitlist.md)."""

    hold_id: str
    practitioner_id: str
    start: int
    end: int
    expires_ms: int


class WaitlistRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A patient's request to join a practice's waitlist (API.md, Waitlist): local dates (inclusive), optionally
    weekdays and local times (absent: any time of the day)."""

    visit_type_id: Identifier
    from_date: dt.date
    to_date: dt.date
    patient: PatientIn
    practitioner_id: Identifier | None = None
    weekdays: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)] | None = None
    from_time: HHMM | None = None
    to_time: HHMM | None = None


class WaitlistRecord(msgspec.Struct, kw_only=True):
    """A waitlist entry as Redis (``T:wl:entries``) and every waitlist event's ``data`` hold it. ``spans`` are
    the entry's window in UTC epoch seconds, expanded once at join; ``had`` the intervals
    (``<practitioner>|<start>|<end>``) already offered to it; ``status`` never reads ``ended`` here (that is
    derived when read: the window passed)."""

    id: str
    practice_id: str
    visit_type_id: str
    practitioner_id: str | None = None
    from_date: str
    to_date: str
    weekdays: list[str] | None = None
    from_time: str | None = None
    to_time: str | None = None
    spans: list[list[int]]
    order: int
    status: str  # waiting | offered | booked | left
    version: int
    joined_ms: int
    updated_ms: int
    offer: WaitlistOffer | None = None
    had: list[str] = msgspec.field(default_factory=list)
    appointment_id: str | None = None
    manage_hash: str = ""
    lapsed_ms: int | None = None  # when its last offer lapsed (cleared by the next offer): accept answers 410
    patient: Patient
