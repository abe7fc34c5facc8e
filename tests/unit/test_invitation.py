"""The calendar invitation of a notification (engine/notices.py) names its ORGANIZER and ATTENDEE, as RFC 5546
requires of a REQUEST and a CANCEL: read back from the mail as a calendar client would (the message serialized
to bytes and parsed again, its text/calendar part parsed by the icalendar package)."""

from __future__ import annotations

import email
import email.policy
from urllib.parse import unquote

import icalendar
import pytest

from engine.notices import NoticeFacts, message

SENDER = 'Front desk "Booking" <front.desk@cabinet.example>'


def facts(kind: str = "confirmation", **over: str) -> NoticeFacts:
    base = {
        "practice_name": 'Cabinet "Santé", Paris; 2nd floor: B',
        "patient_name": 'Ada "Countess" Lovelace, née Byron; Esq.',
        "patient_email": "ada+calendar@example.org",
    }
    return NoticeFacts(
        notification_id=f"a1:{kind}:0:3",
        kind=kind,
        version=3,
        appointment_id="a1",
        start=1_900_000_800,
        end=1_900_002_600,
        timezone="Europe/Paris",
        practitioner_name="Dr Who",
        visit_type_name="Consultation",
        **{**base, **over},
    )


def invitation(f: NoticeFacts, sender: str = SENDER) -> tuple[str, icalendar.Calendar]:
    """The calendar part's METHOD content-type parameter and the parsed calendar, from the mail's bytes."""
    msg = email.message_from_bytes(message(f, sender).as_bytes(), policy=email.policy.default)
    parts = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    raw = parts[0].get_payload(decode=True)
    return str(parts[0].get_param("method")), icalendar.Calendar.from_ical(raw)


@pytest.mark.parametrize(("kind", "method"), [("confirmation", "REQUEST"), ("reminder", "REQUEST"),
                                              ("cancellation", "CANCEL")])  # fmt: skip
def test_the_invitation_names_the_practice_as_organizer_and_the_patient_as_attendee(kind: str, method: str) -> None:
    f = facts(kind)
    param, cal = invitation(f)
    assert param == method and str(cal["METHOD"]) == method
    (event,) = cal.walk("VEVENT")
    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:front.desk@cabinet.example"  # the sender's address, not its display name
    assert organizer.params["CN"] == f.practice_name  # quotes, comma, semicolon and colon come back whole
    attendees = event["ATTENDEE"]
    assert not isinstance(attendees, list)  # exactly one
    assert str(attendees) == "mailto:ada+calendar@example.org"
    assert attendees.params["CN"] == f.patient_name
    assert {k: attendees.params[k] for k in ("ROLE", "PARTSTAT", "RSVP", "CUTYPE")} == {
        "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED", "RSVP": "FALSE", "CUTYPE": "INDIVIDUAL"}  # fmt: skip
    assert str(event["UID"]) == "a1@booking-engine" and int(event["SEQUENCE"]) == 3


def test_an_address_with_uri_delimiters_is_percent_encoded_and_reads_back() -> None:
    odd = 'o%dd?one#x,y"z@example.org'  # each of these would end or split a mailto URI
    _, cal = invitation(facts(patient_email=odd))
    value = str(cal.walk("VEVENT")[0]["ATTENDEE"])
    assert value.startswith("mailto:")
    assert not set(value.removeprefix("mailto:")) & set('?#,"') and value.count("%") == 5, value
    assert unquote(value.removeprefix("mailto:")) == odd


def test_a_bare_sender_address_is_the_organizer() -> None:
    _, cal = invitation(facts(), sender="no-reply@booking.invalid")
    assert str(cal.walk("VEVENT")[0]["ORGANIZER"]) == "mailto:no-reply@booking.invalid"


def test_the_raw_lines_quote_the_names() -> None:
    """What a strict parser sees: the CN parameter DQUOTEd (it holds ';', ':' and ','), a '"' in it written as
    ^' (RFC 6868), nothing of the name outside the quotes."""
    msg = email.message_from_bytes(message(facts(), SENDER).as_bytes(), policy=email.policy.default)
    raw = next(p for p in msg.walk() if p.get_content_type() == "text/calendar").get_payload(decode=True)
    lines = raw.decode().replace("\r\n ", "").split("\r\n")  # unfolded
    attendee = next(line for line in lines if line.startswith("ATTENDEE;"))
    assert attendee.startswith("ATTENDEE;CN=\"Ada ^'Countess^' Lovelace, née Byron; Esq.\";"), attendee
    organizer = next(line for line in lines if line.startswith("ORGANIZER;"))
    assert organizer == "ORGANIZER;CN=\"Cabinet ^'Santé^', Paris; 2nd floor: B\":mailto:front.desk@cabinet.example"
