"""Notification messages: plain text in the practice's zone (naming it) and an iCalendar attachment.

Pure: builds an EmailMessage from records; sending is persistence.notify's job.
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import quote

import icalendar
import msgspec

from engine import notice_texts, timeutil

KINDS = ("confirmation", "reminder", "cancellation")


class NoticeFacts(msgspec.Struct, frozen=True):
    """Everything a message says, read from the live appointment just before sending."""

    notification_id: str
    kind: str
    version: int
    appointment_id: str
    start: int
    end: int
    timezone: str
    practice_name: str
    practitioner_name: str
    visit_type_name: str
    patient_name: str
    patient_email: str
    offset_s: int = 0
    rescheduled: bool = False
    language: str = "en"  # the patient's, else the practice's (engine/notice_texts.py)
    manage_url: str = ""  # the app's page for this appointment (MANAGE_URL_TEMPLATE), '' when none is set


def local_text(epoch: int, tz_name: str) -> str:
    """'Tuesday 1 December 2026 at 09:00 (Europe/Paris, UTC+01:00)'."""
    t = dt.datetime.fromtimestamp(epoch, timeutil.zone(tz_name))
    offset = t.strftime("%z")
    return (
        f"{t.strftime('%A')} {t.day} {t.strftime('%B %Y')} at {t.strftime('%H:%M')} "
        f"({tz_name}, UTC{offset[:3]}:{offset[3:]})"
    )


def _lead(offset_s: int, language: str = "en") -> str:
    if offset_s % 86400 == 0:
        n, unit = offset_s // 86400, "day"
    elif offset_s % 3600 == 0:
        n, unit = offset_s // 3600, "hour"
    elif offset_s % 60 == 0:
        n, unit = offset_s // 60, "minute"
    else:
        n, unit = offset_s, "second"
    if language in notice_texts.TEXTS:
        return notice_texts.lead(n, unit, language)
    return f"{n} {unit}{'s' if n != 1 else ''}"


def _kind(f: NoticeFacts) -> str:
    if f.kind == "cancellation":
        return "cancelled"
    if f.kind == "reminder":
        return "reminder"
    return "moved" if f.rescheduled else "confirmed"


def _words(f: NoticeFacts) -> dict[str, str] | None:
    """The notice's words in its language (None: English, written below as it always was)."""
    return notice_texts.TEXTS.get(f.language)


def _local(f: NoticeFacts) -> str:
    if _words(f) is None:
        return local_text(f.start, f.timezone)
    return notice_texts.when(dt.datetime.fromtimestamp(f.start, timeutil.zone(f.timezone)), f.timezone, f.language)


def subject(f: NoticeFacts) -> str:
    words = _words(f)
    if words is not None:
        return words[f"subject_{_kind(f)}"].format(when=_local(f), lead=_lead(f.offset_s, f.language))
    when = local_text(f.start, f.timezone)
    if f.kind == "cancellation":
        return f"Cancelled: your appointment on {when}"
    if f.kind == "reminder":
        return f"Reminder: your appointment in {_lead(f.offset_s)}, {when}"
    return f"{'Moved' if f.rescheduled else 'Confirmed'}: your appointment on {when}"


def _body_in(f: NoticeFacts, words: dict[str, str]) -> str:
    who = words["who"].format(practitioner=f.practitioner_name, practice=f.practice_name)
    main = words[f"main_{_kind(f)}"].format(
        who=who, when=_local(f), visit=f.visit_type_name, minutes=(f.end - f.start) // 60
    )
    how = "" if f.kind == "cancellation" else "\n" + words["how"].format(ref=f.appointment_id) + "\n"
    if how and f.manage_url:
        how += words["manage"].format(url=f.manage_url) + "\n"
    return (
        f"{words['hello'].format(name=f.patient_name)}\n\n{main}\n"
        f"{words['local'].format(tz=f.timezone)}\n{how}\n"
        f"{words['ref'].format(ref=f.appointment_id, version=f.version)}\n"
    )


def body(f: NoticeFacts) -> str:
    words = _words(f)
    if words is not None:
        return _body_in(f, words)
    when = local_text(f.start, f.timezone)
    minutes = (f.end - f.start) // 60
    who = f"{f.practitioner_name} at {f.practice_name}"
    if f.kind == "cancellation":
        main = f"Your appointment with {who} on {when} has been cancelled."
    elif f.kind == "reminder":
        main = f"This is a reminder of your appointment with {who} on {when} ({f.visit_type_name}, {minutes} minutes)."
    elif f.rescheduled:
        main = f"Your appointment with {who} has been moved to {when} ({f.visit_type_name}, {minutes} minutes)."
    else:
        main = f"Your appointment with {who} is confirmed for {when} ({f.visit_type_name}, {minutes} minutes)."
    how = (
        ""
        if f.kind == "cancellation"
        else "\nTo cancel or change it, use the app you booked with (it keeps your manage token), or call the practice "
        f"and give the reference {f.appointment_id}.\n"
    )
    if how and f.manage_url:
        how += f"Manage it in the app: {f.manage_url}\n"
    return (
        f"Hello {f.patient_name},\n\n{main}\n"
        f"All times are local to the practice: {f.timezone}.\n{how}\n"
        f"Reference: {f.appointment_id} (version {f.version})\n"
    )


def mailto(address: str) -> str:
    """A ``mailto:`` URI of one address (RFC 6068): what a URI may not hold as it is (a space, ``"``, ``%``, ``?``,
    ``#``, ``,``, a non-ASCII letter...) percent-encoded, the rest of the address kept as written."""
    return "mailto:" + quote(address, safe="!$'()*+;:@=&/")


def calendar_address(address: str, name: str, **params: str) -> icalendar.vCalAddress:
    """An ORGANIZER or ATTENDEE: the mailto URI and its common name (icalendar quotes a CN holding ``;``, ``:`` or
    ``,`` and writes a ``"`` as ``^'``, RFC 6868)."""
    value = icalendar.vCalAddress(mailto(address))
    value.params["CN"] = icalendar.vText(name)
    for key, param in params.items():
        value.params[key.replace("_", "-").upper()] = icalendar.vText(param)
    return value


def sender_address(sender: str) -> str:
    """The address of NOTIFY_FROM (``Booking <no-reply@booking.invalid>`` -> ``no-reply@booking.invalid``)."""
    return parseaddr(sender)[1] or sender.strip()


def calendar(f: NoticeFacts, sender: str, now: dt.datetime | None = None) -> bytes:
    """METHOD:REQUEST (or CANCEL) with a stable UID and a SEQUENCE that rises with the appointment's version, and
    the ORGANIZER and ATTENDEE that RFC 5546 requires of both: the practice (named, at the sender's address:
    replies go where the mail came from) and the patient (a required participant who booked it, so ACCEPTED, and
    no reply asked for)."""
    tz = timeutil.zone(f.timezone)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//booking-engine//notifications//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if f.kind == "cancellation" else "REQUEST")
    event = icalendar.Event()
    event.add("uid", f"{f.appointment_id}@booking-engine")
    event.add("sequence", f.version)
    event.add("dtstamp", now or dt.datetime.now(dt.timezone.utc))
    event.add("dtstart", dt.datetime.fromtimestamp(f.start, tz))
    event.add("dtend", dt.datetime.fromtimestamp(f.end, tz))
    words = _words(f)
    summary = "{visit} with {practitioner}" if words is None else words["summary"]
    event.add("summary", summary.format(visit=f.visit_type_name, practitioner=f.practitioner_name))
    event.add("location", f.practice_name)
    event.add("status", "CANCELLED" if f.kind == "cancellation" else "CONFIRMED")
    event.add("organizer", calendar_address(sender_address(sender), f.practice_name))
    event.add(
        "attendee",
        calendar_address(
            f.patient_email,
            f.patient_name,
            cutype="INDIVIDUAL",
            role="REQ-PARTICIPANT",
            partstat="ACCEPTED",
            rsvp="FALSE",
        ),
    )
    cal.add_component(event)
    cal.add_missing_timezones()
    return bytes(cal.to_ical())


def envelope(
    notification_id: str, sender: str, to: str, subject_line: str, text: str, now: dt.datetime | None = None
) -> EmailMessage:
    """A plain-text message of one notification. An address with a control character (stored before the API
    refused them: a final newline passed its old pattern) is refused with ValueError: in a header, a line break
    ends the headers and turns the rest into the body."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in to):
        raise ValueError(f"the recipient address holds a control character: {to!r}")
    msg = EmailMessage()
    msg["Subject"] = subject_line
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now or dt.datetime.now(dt.timezone.utc))
    # stable per notification: a resend after a crash carries the same id, so receivers can tell
    msg["Message-ID"] = f"<{notification_id.replace(':', '.')}@booking-engine>"
    msg["X-Booking-Notification"] = notification_id
    msg.set_content(text)
    return msg


def message(f: NoticeFacts, sender: str, now: dt.datetime | None = None) -> EmailMessage:
    msg = envelope(f.notification_id, sender, f.patient_email, subject(f), body(f), now)
    method = "CANCEL" if f.kind == "cancellation" else "REQUEST"
    msg.add_attachment(
        calendar(f, sender, now),
        maintype="text",
        subtype="calendar",
        filename="appointment.ics",
        params={"method": method},
    )
    return msg
