"""Notices in the patient's language, else the practice's (API.md, "... languages"): subject, text and the
iCalendar summary, with dates formatted for the locale in the practice's zone. Parsed from the real SMTP capture
of the real worker (outbox, rq) against the real Redis and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import icalendar
import msgspec
import pytest

from engine import notices
from tests.support.http import search
from tests.support.smtp import ics_of, text_of
from tests.system.test_notifications import World, make_world

pytestmark = pytest.mark.integration
WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# written out here, not taken from Babel: the test checks what Babel gives the notices
FR_DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
FR_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre"]  # fmt: skip
DE_DAYS = ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
DE_MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
             "November", "Dezember"]  # fmt: skip


@pytest.fixture
def world(redis_db: str) -> Iterator[World]:
    yield from make_world("24h", database="booking_notify_lang", redis_url=redis_db)


def practice(c: Any, language: str) -> dict[str, Any]:
    p = c.post("/v1/practices", json={"name": "Cabinet Rhin", "timezone": "Europe/Paris", "language": language})
    assert p.status_code == 201 and p.json()["language"] == language, p.text
    pid = p.json()["id"]
    assert c.get(f"/v1/practices/{pid}").json()["language"] == language
    pr = c.post(f"/v1/practices/{pid}/practitioners", json={"name": "Dr Weber"}).json()["id"]
    vt = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "Kontrolle", "duration_minutes": 30}).json()["id"]
    weekly = [{"day": d, "start": "08:00", "end": "12:00"} for d in WEEK]
    assert c.put(f"/v1/practitioners/{pr}/schedule", json={"weekly": weekly}).status_code == 200
    return {"pid": pid, "pr": pr, "vt": vt}


def book(c: Any, ctx: dict[str, Any], start: str, **patient: Any) -> dict[str, Any]:
    h = c.post("/v1/holds", json={"practitioner_id": ctx["pr"], "visit_type_id": ctx["vt"], "start": start})
    assert h.status_code == 201, h.text
    body = {"hold_id": h.json()["id"], "patient": {"name": "Marie Curie", "email": "marie@example.org", **patient}}
    r = c.post("/v1/appointments", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def received(world: World, nid: str) -> Any:
    assert world.inbox.wait_for(lambda i: nid in i.by_notification(), 30), nid
    return world.inbox.by_notification()[nid][0]


def test_notices_in_french_and_german_with_localized_dates(world: World) -> None:
    c = world.client
    ctx = practice(c, "de")
    day = dt.date.today() + dt.timedelta(days=3)
    slots = {s["start"][11:16]: s["start"] for s in search(c, ctx["pid"], ctx["vt"], day)}
    offset = slots["09:00"][-6:]
    french = book(c, ctx, slots["09:00"], language="fr")  # the patient's language wins
    assert french["patient"]["language"] == "fr"
    german = book(c, ctx, slots["10:00"])  # none chosen: the practice's
    assert "language" not in german["patient"]

    msg = received(world, f"{french['id']}:confirmation:0:1")
    fr_when = f"{FR_DAYS[day.weekday()]} {day.day} {FR_MONTHS[day.month - 1]} {day.year} à 09:00"
    assert msg["Subject"] == f"Confirmé : votre rendez-vous le {fr_when} (Europe/Paris, UTC{offset})"
    text = text_of(msg)
    assert text.startswith("Bonjour Marie Curie,")
    assert f"Votre rendez-vous avec Dr Weber (Cabinet Rhin) est confirmé pour le {fr_when}" in text
    assert "(Kontrolle, 30 minutes)" in text and f"Référence : {french['id']} (version 1)" in text
    event = icalendar.Calendar.from_ical(ics_of(msg)).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == "Kontrolle avec Dr Weber"

    msg = received(world, f"{german['id']}:confirmation:0:1")
    de_when = f"{DE_DAYS[day.weekday()]}, {day.day}. {DE_MONTHS[day.month - 1]} {day.year} um 10:00"
    assert msg["Subject"] == f"Bestätigt: Ihr Termin am {de_when} (Europe/Paris, UTC{offset})"
    text = text_of(msg)
    assert text.startswith("Guten Tag Marie Curie,") and "Alle Zeiten sind Ortszeit der Praxis: Europe/Paris." in text
    assert str(icalendar.Calendar.from_ical(ics_of(msg)).walk("VEVENT")[0]["SUMMARY"]) == "Kontrolle bei Dr Weber"

    assert c.post(f"/v1/appointments/{german['id']}/cancel", json={}).status_code == 200
    msg = received(world, f"{german['id']}:cancellation:0:2")
    assert msg["Subject"] == f"Abgesagt: Ihr Termin am {de_when} (Europe/Paris, UTC{offset})"
    assert "wurde abgesagt" in text_of(msg)


def test_an_unknown_language_is_refused_and_changes_nothing(world: World) -> None:
    c = world.client
    r = c.post("/v1/practices", json={"name": "X", "timezone": "Europe/Paris", "language": "xx"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    ctx = practice(c, "en")
    day = dt.date.today() + dt.timedelta(days=3)
    start = search(c, ctx["pid"], ctx["vt"], day)[0]["start"]
    h = c.post("/v1/holds", json={"practitioner_id": ctx["pr"], "visit_type_id": ctx["vt"], "start": start}).json()
    body = {"hold_id": h["id"], "patient": {"name": "A", "email": "a@example.org", "language": "klingon"}}
    r = c.post("/v1/appointments", json=body)
    assert r.status_code == 422 and r.json()["code"] == "validation_error", r.text
    assert c.get(f"/v1/holds/{h['id']}").json()["status"] == "held"  # the hold was not used


def test_reminder_leads_in_each_language() -> None:
    base = notices.NoticeFacts(
        notification_id="n", kind="reminder", version=1, appointment_id="a", start=1_806_310_800, end=1_806_312_600,
        timezone="Europe/Paris", practice_name="P", practitioner_name="Dr", visit_type_name="V",
        patient_name="N", patient_email="n@example.org", offset_s=2 * 86400,
    )  # fmt: skip

    leads = {
        lang: notices.subject(msgspec.structs.replace(base, language=lang)).replace("\xa0", " ")
        for lang in ("en", "fr", "de", "es", "it", "nl")
    }
    assert (
        leads["en"] == "Reminder: your appointment in 2 days, Monday 29 March 2027 at 11:00 (Europe/Paris, UTC+02:00)"
    )
    assert (
        leads["fr"] == "Rappel : votre rendez-vous dans 2 jours, lundi 29 mars 2027 à 11:00 (Europe/Paris, UTC+02:00)"
    )
    assert (
        leads["de"] == "Erinnerung: Ihr Termin am Montag, 29. März 2027 um 11:00 (Europe/Paris, UTC+02:00), noch 2 Tage"
    )
    assert leads["es"].startswith("Recordatorio: su cita dentro de 2 días, lunes, 29 de marzo de 2027 a las 11:00")
    assert leads["it"].startswith("Promemoria: il suo appuntamento tra 2 giorni, lunedì 29 marzo 2027 alle 11:00")
    assert leads["nl"].startswith("Herinnering: uw afspraak over 2 dagen, maandag 29 maart 2027 om 11:00")


def test_waitlist_offers_in_the_patients_language_else_the_practices(world: World) -> None:
    """API.md: "confirmations, reminders, cancellations and offers are written in the patient's language, else the
    practice's". Two entries wait for the same 09:00 in a German practice: one patient chose French, one chose none.
    The booked 09:00 is cancelled: the oldest entry is offered it (in French); it declines, and the next one is
    offered it (in German), each with the offered time and the offer's end as the locale writes them."""
    c = world.client
    ctx = practice(c, "de")
    day = dt.date.today() + dt.timedelta(days=3)
    nine = next(s["start"] for s in search(c, ctx["pid"], ctx["vt"], day) if s["start"][11:16] == "09:00")
    offset = nine[-6:]
    booked = book(c, ctx, nine)
    entries = []
    for language in ("fr", None):
        patient: dict[str, Any] = {"name": "Marie Curie", "email": "marie@example.org"}
        if language:
            patient["language"] = language
        body = {"visit_type_id": ctx["vt"], "from_date": day.isoformat(), "to_date": day.isoformat(),
                "from_time": "09:00", "to_time": "09:30", "patient": patient}  # fmt: skip
        joined = c.post(f"/v1/practices/{ctx['pid']}/waitlist", json=body)
        assert joined.status_code == 201, joined.text
        entries.append(joined.json()["id"])
    assert c.post(f"/v1/appointments/{booked['id']}/cancel", json={}).status_code == 200
    french_entry, german_entry = entries

    msg = received(world, f"{french_entry}:waitlist_offer:0:2")
    fr_when = f"{FR_DAYS[day.weekday()]} {day.day} {FR_MONTHS[day.month - 1]} {day.year} à 09:00"
    assert msg["Subject"] == f"Un créneau s'est libéré pour vous : {fr_when} (Europe/Paris, UTC{offset})"
    text = text_of(msg)
    assert text.startswith("Bonjour Marie Curie,") and "Vous êtes sur la liste d'attente de Cabinet Rhin." in text
    assert f"Kontrolle (30 minutes) avec Dr Weber le {fr_when}" in text
    assert "L'offre vous est réservée jusqu'au " in text and f"Référence : {french_entry} (version 2)" in text

    assert c.post(f"/v1/waitlist/{french_entry}/decline", json={}).status_code == 200
    msg = received(world, f"{german_entry}:waitlist_offer:0:2")
    de_when = f"{DE_DAYS[day.weekday()]}, {day.day}. {DE_MONTHS[day.month - 1]} {day.year} um 09:00"
    assert msg["Subject"] == f"Ein Termin ist für Sie frei geworden: {de_when} (Europe/Paris, UTC{offset})"
    text = text_of(msg)
    assert text.startswith("Guten Tag Marie Curie,") and f"Kontrolle (30 Minuten) bei Dr Weber am {de_when}" in text
    assert "Das Angebot gilt für Sie bis " in text and "Alle Zeiten sind Ortszeit der Praxis: Europe/Paris." in text
