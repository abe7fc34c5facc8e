"""The words of the appointment notices in each language a practice or patient may choose (API.md, "...
languages"): English, French, German, Spanish, Italian, Dutch. Dates, times and durations are formatted for the
locale by Babel, in the practice's zone (which the text names)."""

from __future__ import annotations

import datetime as dt
from typing import Final

from babel.dates import format_date
from babel.units import format_unit

LANGUAGES: Final = ("en", "fr", "de", "es", "it", "nl")

# keys: subject_<kind>, main_<kind> (kind: confirmed, moved, reminder, cancelled), hello, who, local, how, ref, manage,
# summary, at (the word between a date and its time)
TEXTS: Final[dict[str, dict[str, str]]] = {
    "fr": {
        "subject_confirmed": "Confirmé : votre rendez-vous le {when}",
        "subject_moved": "Déplacé : votre rendez-vous, désormais le {when}",
        "subject_reminder": "Rappel : votre rendez-vous dans {lead}, {when}",
        "subject_cancelled": "Annulé : votre rendez-vous du {when}",
        "hello": "Bonjour {name},",
        "who": "{practitioner} ({practice})",
        "main_confirmed": "Votre rendez-vous avec {who} est confirmé pour le {when} ({visit}, {minutes} minutes).",
        "main_moved": "Votre rendez-vous avec {who} a été déplacé au {when} ({visit}, {minutes} minutes).",
        "main_reminder": "Nous vous rappelons votre rendez-vous avec {who} le {when} ({visit}, {minutes} minutes).",
        "main_cancelled": "Votre rendez-vous avec {who} du {when} a été annulé.",
        "local": "Toutes les heures sont celles du cabinet : {tz}.",
        "how": "Pour l'annuler ou le modifier, utilisez l'application avec laquelle vous avez réservé (elle garde "
        "votre jeton de gestion), ou appelez le cabinet en donnant la référence {ref}.",
        "ref": "Référence : {ref} (version {version})",
        "manage": "Le gérer dans l'application : {url}",
        "summary": "{visit} avec {practitioner}",
        "at": "à",
    },
    "de": {
        "subject_confirmed": "Bestätigt: Ihr Termin am {when}",
        "subject_moved": "Verschoben: Ihr Termin, jetzt am {when}",
        "subject_reminder": "Erinnerung: Ihr Termin am {when}, noch {lead}",  # "noch 2 Tage": no dative needed
        "subject_cancelled": "Abgesagt: Ihr Termin am {when}",
        "hello": "Guten Tag {name},",
        "who": "{practitioner} ({practice})",
        "main_confirmed": "Ihr Termin bei {who} ist bestätigt für {when} ({visit}, {minutes} Minuten).",
        "main_moved": "Ihr Termin bei {who} wurde verschoben auf {when} ({visit}, {minutes} Minuten).",
        "main_reminder": "Wir erinnern Sie an Ihren Termin bei {who} am {when} ({visit}, {minutes} Minuten).",
        "main_cancelled": "Ihr Termin bei {who} am {when} wurde abgesagt.",
        "local": "Alle Zeiten sind Ortszeit der Praxis: {tz}.",
        "how": "Um ihn abzusagen oder zu ändern, nutzen Sie die App, mit der Sie gebucht haben (sie bewahrt Ihr "
        "Verwaltungstoken), oder rufen Sie die Praxis an und nennen Sie die Referenz {ref}.",
        "ref": "Referenz: {ref} (Version {version})",
        "manage": "In der App verwalten: {url}",
        "summary": "{visit} bei {practitioner}",
        "at": "um",
    },
    "es": {
        "subject_confirmed": "Confirmada: su cita del {when}",
        "subject_moved": "Cambiada: su cita, ahora el {when}",
        "subject_reminder": "Recordatorio: su cita dentro de {lead}, {when}",
        "subject_cancelled": "Cancelada: su cita del {when}",
        "hello": "Hola, {name}:",
        "who": "{practitioner} ({practice})",
        "main_confirmed": "Su cita con {who} queda confirmada para el {when} ({visit}, {minutes} minutos).",
        "main_moved": "Su cita con {who} se ha cambiado al {when} ({visit}, {minutes} minutos).",
        "main_reminder": "Le recordamos su cita con {who} el {when} ({visit}, {minutes} minutos).",
        "main_cancelled": "Su cita con {who} del {when} ha sido cancelada.",
        "local": "Todas las horas son las locales de la consulta: {tz}.",
        "how": "Para cancelarla o cambiarla, use la aplicación con la que reservó (guarda su token de gestión) o "
        "llame a la consulta indicando la referencia {ref}.",
        "ref": "Referencia: {ref} (versión {version})",
        "manage": "Gestionarla en la aplicación: {url}",
        "summary": "{visit} con {practitioner}",
        "at": "a las",
    },
    "it": {
        "subject_confirmed": "Confermato: il suo appuntamento del {when}",
        "subject_moved": "Spostato: il suo appuntamento, ora il {when}",
        "subject_reminder": "Promemoria: il suo appuntamento tra {lead}, {when}",
        "subject_cancelled": "Annullato: il suo appuntamento del {when}",
        "hello": "Gentile {name},",
        "who": "{practitioner} ({practice})",
        "main_confirmed": "Il suo appuntamento con {who} è confermato per {when} ({visit}, {minutes} minuti).",
        "main_moved": "Il suo appuntamento con {who} è stato spostato a {when} ({visit}, {minutes} minuti).",
        "main_reminder": "Le ricordiamo il suo appuntamento con {who} il {when} ({visit}, {minutes} minuti).",
        "main_cancelled": "Il suo appuntamento con {who} del {when} è stato annullato.",
        "local": "Tutti gli orari sono quelli locali dello studio: {tz}.",
        "how": "Per annullarlo o modificarlo, usi l'app con cui ha prenotato (conserva il suo token di gestione), "
        "oppure chiami lo studio indicando il riferimento {ref}.",
        "ref": "Riferimento: {ref} (versione {version})",
        "manage": "Gestirlo nell'app: {url}",
        "summary": "{visit} con {practitioner}",
        "at": "alle",
    },
    "nl": {
        "subject_confirmed": "Bevestigd: uw afspraak op {when}",
        "subject_moved": "Verplaatst: uw afspraak, nu op {when}",
        "subject_reminder": "Herinnering: uw afspraak over {lead}, {when}",
        "subject_cancelled": "Geannuleerd: uw afspraak op {when}",
        "hello": "Beste {name},",
        "who": "{practitioner} ({practice})",
        "main_confirmed": "Uw afspraak met {who} is bevestigd voor {when} ({visit}, {minutes} minuten).",
        "main_moved": "Uw afspraak met {who} is verplaatst naar {when} ({visit}, {minutes} minuten).",
        "main_reminder": "Dit is een herinnering aan uw afspraak met {who} op {when} ({visit}, {minutes} minuten).",
        "main_cancelled": "Uw afspraak met {who} op {when} is geannuleerd.",
        "local": "Alle tijden zijn de lokale tijd van de praktijk: {tz}.",
        "how": "Om de afspraak te annuleren of te wijzigen, gebruikt u de app waarmee u hebt geboekt (die bewaart "
        "uw beheertoken), of belt u de praktijk met referentie {ref}.",
        "ref": "Referentie: {ref} (versie {version})",
        "manage": "Beheren in de app: {url}",
        "summary": "{visit} met {practitioner}",
        "at": "om",
    },
}


def when(t: dt.datetime, tz_name: str, language: str) -> str:
    """'lundi 29 mars 2027 à 09:00 (Europe/Paris, UTC+02:00)': the locale's full date, the 24-hour time."""
    offset = t.strftime("%z")
    date = format_date(t.date(), format="full", locale=language)
    return f"{date} {TEXTS[language]['at']} {t.strftime('%H:%M')} ({tz_name}, UTC{offset[:3]}:{offset[3:]})"


def lead(n: int, unit: str, language: str) -> str:
    """'2 jours', '3 Stunden': a reminder's lead time in the locale's words (unit: day, hour, minute, second)."""
    return str(format_unit(n, f"duration-{unit}", locale=language, length="long"))
