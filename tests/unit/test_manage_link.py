"""MANAGE_URL_TEMPLATE (issue 21, item 8): confirmations and reminders link to the app's own page for the
appointment, in the notice's language; a cancellation does not, and without the setting no mail does."""

from __future__ import annotations

import pytest

from engine import notices
from persistence.notify.jobs import manage_url

TEMPLATE = "https://app.example/appointments/{appointment_id}?from=mail"


def facts(kind: str, language: str, url: str) -> notices.NoticeFacts:
    return notices.NoticeFacts(
        notification_id="n1", kind=kind, version=1, appointment_id="p1.a/x y", start=1_800_000_000,
        end=1_800_001_800, timezone="Europe/Paris", practice_name="Cabinet", practitioner_name="Dr A",
        visit_type_name="Visit", patient_name="Ada", patient_email="ada@example.org", language=language,
        manage_url=url,
    )  # fmt: skip


def test_the_link_carries_the_appointment_id_quoted() -> None:
    assert manage_url(TEMPLATE, "p1.a/x y") == "https://app.example/appointments/p1.a%2Fx%20y?from=mail"
    assert manage_url("", "p1.a") == ""


@pytest.mark.parametrize(("language", "words"), [("en", "Manage it in the app"), ("fr", "Le gérer"),
                                                 ("de", "In der App verwalten"), ("nl", "Beheren in de app")])  # fmt: skip
@pytest.mark.parametrize("kind", ["confirmation", "reminder"])
def test_confirmations_and_reminders_link_to_the_apps_page(language: str, words: str, kind: str) -> None:
    url = manage_url(TEMPLATE, "p1.a/x y")
    body = notices.body(facts(kind, language, url))
    assert f"{words}" in body and url in body


@pytest.mark.parametrize("language", ["en", "fr"])
def test_no_link_in_a_cancellation_nor_without_the_setting(language: str) -> None:
    url = manage_url(TEMPLATE, "p1.a")
    assert url not in notices.body(facts("cancellation", language, url))
    assert "https://" not in notices.body(facts("confirmation", language, ""))
