"""The waitlist offer message: the offered time in the practice's zone (naming it), when the offer lapses, and
how to accept or decline it, in the patient's language, else the practice's (engine/notice_texts.py). Pure: builds an EmailMessage from records; sending is persistence.notify's job.

No iCalendar attachment: an offer is not an appointment until it is accepted (the confirmation that follows
an accept carries the calendar entry)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import msgspec

from engine import notice_texts, timeutil
from engine.notices import envelope, local_text

KIND = "waitlist_offer"  # the notification kind (notifications.kind) of an offer mail


class OfferFacts(msgspec.Struct, frozen=True):
    """Everything an offer mail says, read from the live entry and its hold just before sending."""

    notification_id: str
    entry_id: str
    version: int
    hold_id: str
    start: int
    end: int
    expires_ms: int
    timezone: str
    practice_name: str
    practitioner_name: str
    visit_type_name: str
    patient_name: str
    patient_email: str
    accept_url: str  # the patient app's page for this offer (WAITLIST_ACCEPT_URL with the entry id)
    language: str = "en"  # the patient's, else the practice's (engine/notice_texts.py)


def _when(epoch: int, f: OfferFacts) -> str:
    return notice_texts.when(dt.datetime.fromtimestamp(epoch, timeutil.zone(f.timezone)), f.timezone, f.language)


def subject(f: OfferFacts) -> str:
    words = notice_texts.TEXTS.get(f.language)
    if words is not None:
        return words["subject_offer"].format(when=_when(f.start, f))
    return f"A time came free for you: {local_text(f.start, f.timezone)}"


def _localized_body(f: OfferFacts, words: dict[str, str]) -> str:
    minutes = (f.end - f.start) // 60
    main = words["offer_main"].format(visit=f.visit_type_name, minutes=minutes, practitioner=f.practitioner_name,
                                      when=_when(f.start, f))  # fmt: skip
    return (
        f"{words['hello'].format(name=f.patient_name)}\n\n"
        f"{words['offer_list'].format(practice=f.practice_name)}\n{main}\n\n"
        f"{words['offer_until'].format(lapses=_when(f.expires_ms // 1000, f))}\n"
        f"{words['local'].format(tz=f.timezone)}\n\n"
        f"{words['offer_how']}\n  {f.accept_url}\n{words['offer_after']}\n"
        f"  POST /v1/waitlist/{f.entry_id}/accept   (X-Manage-Token)\n"
        f"  POST /v1/waitlist/{f.entry_id}/decline  (X-Manage-Token)\n"
        f"{words['offer_call'].format(ref=f.entry_id)}\n\n"
        f"{words['ref'].format(ref=f.entry_id, version=f.version)}\n"
    )


def body(f: OfferFacts) -> str:
    words = notice_texts.TEXTS.get(f.language)
    if words is not None:
        return _localized_body(f, words)
    when = local_text(f.start, f.timezone)
    lapses = local_text(f.expires_ms // 1000, f.timezone)
    minutes = (f.end - f.start) // 60
    return (
        f"Hello {f.patient_name},\n\n"
        f"You are on the waiting list of {f.practice_name}. A time came free and is held for you alone:\n"
        f"{f.visit_type_name} ({minutes} minutes) with {f.practitioner_name} on {when}.\n\n"
        f"The offer is held for you until {lapses}. After that it lapses and the time goes to the next patient\n"
        "waiting; you stay on the waiting list either way.\n"
        f"All times are local to the practice: {f.timezone}.\n\n"
        "To accept or decline it, open the app you joined the waiting list with (it keeps your manage token):\n"
        f"  {f.accept_url}\n"
        "Accepting gets you the appointment and its confirmation; declining keeps you on the list. The app sends\n"
        f"  POST /v1/waitlist/{f.entry_id}/accept   with the header X-Manage-Token: <your manage token>\n"
        f"  POST /v1/waitlist/{f.entry_id}/decline  with the same header.\n"
        f"Or call the practice and give the reference {f.entry_id}.\n\n"
        f"Reference: {f.entry_id} (version {f.version})\n"
    )


def message(f: OfferFacts, sender: str, now: dt.datetime | None = None) -> EmailMessage:
    return envelope(f.notification_id, sender, f.patient_email, subject(f), body(f), now)
