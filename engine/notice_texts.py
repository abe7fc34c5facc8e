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
# summary, at (the word between a date and its time); a waitlist offer's: subject_offer, offer_* (engine/offer_notices.py)
TEXTS: Final[dict[str, dict[str, str]]] = {
    "fr": {
        "subject_offer": "Un créneau s'est libéré pour vous : {when}",
        "offer_list": "Vous êtes sur la liste d'attente de {practice}. Un créneau s'est libéré et il est réservé "
        "pour vous seul :",
        "offer_main": "{visit} ({minutes} minutes) avec {practitioner} le {when}.",
        "offer_until": "L'offre vous est réservée jusqu'au {lapses}. Ensuite, elle expire et le créneau passe au "
        "patient suivant ; vous restez sur la liste d'attente dans tous les cas.",
        "offer_how": "Pour l'accepter ou la refuser, ouvrez l'application avec laquelle vous vous êtes inscrit sur "
        "la liste d'attente (elle garde votre jeton de gestion) :",
        "offer_after": "Accepter vous donne le rendez-vous et sa confirmation ; refuser vous garde sur la liste.",
        "offer_call": "Ou appelez le cabinet en donnant la référence {ref}.",
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
        "subject_offer": "Ein Termin ist für Sie frei geworden: {when}",
        "offer_list": "Sie stehen auf der Warteliste von {practice}. Ein Termin ist frei geworden und wird nur für "
        "Sie reserviert:",
        "offer_main": "{visit} ({minutes} Minuten) bei {practitioner} am {when}.",
        "offer_until": "Das Angebot gilt für Sie bis {lapses}. Danach verfällt es, und der Termin geht an den "
        "nächsten wartenden Patienten; Sie bleiben in jedem Fall auf der Warteliste.",
        "offer_how": "Um es anzunehmen oder abzulehnen, öffnen Sie die App, mit der Sie sich auf die Warteliste "
        "gesetzt haben (sie bewahrt Ihr Verwaltungstoken):",
        "offer_after": "Wenn Sie annehmen, erhalten Sie den Termin und seine Bestätigung; wenn Sie ablehnen, bleiben "
        "Sie auf der Liste.",
        "offer_call": "Oder rufen Sie die Praxis an und nennen Sie die Referenz {ref}.",
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
        "subject_offer": "Se ha liberado una cita para usted: {when}",
        "offer_list": "Está en la lista de espera de {practice}. Se ha liberado una cita y se la reservamos solo a "
        "usted:",
        "offer_main": "{visit} ({minutes} minutos) con {practitioner} el {when}.",
        "offer_until": "La oferta se le reserva hasta el {lapses}. Después caduca y la cita pasa al siguiente "
        "paciente en espera; usted sigue en la lista de espera en cualquier caso.",
        "offer_how": "Para aceptarla o rechazarla, abra la aplicación con la que se apuntó a la lista de espera "
        "(guarda su token de gestión):",
        "offer_after": "Si acepta, obtiene la cita y su confirmación; si la rechaza, sigue en la lista.",
        "offer_call": "O llame a la consulta indicando la referencia {ref}.",
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
        "subject_offer": "Si è liberato un appuntamento per lei: {when}",
        "offer_list": "Lei è nella lista d'attesa di {practice}. Si è liberato un appuntamento, riservato solo a lei:",
        "offer_main": "{visit} ({minutes} minuti) con {practitioner} il {when}.",
        "offer_until": "L'offerta è riservata a lei fino a {lapses}. Dopo scade e l'appuntamento passa al prossimo "
        "paziente in attesa; lei resta comunque nella lista d'attesa.",
        "offer_how": "Per accettarla o rifiutarla, apra l'app con cui si è iscritto alla lista d'attesa (conserva "
        "il suo token di gestione):",
        "offer_after": "Accettando ottiene l'appuntamento e la sua conferma; rifiutando resta nella lista.",
        "offer_call": "Oppure chiami lo studio indicando il riferimento {ref}.",
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
        "subject_offer": "Er is een tijd voor u vrijgekomen: {when}",
        "offer_list": "U staat op de wachtlijst van {practice}. Er is een tijd vrijgekomen die alleen voor u wordt "
        "vastgehouden:",
        "offer_main": "{visit} ({minutes} minuten) met {practitioner} op {when}.",
        "offer_until": "Het aanbod wordt voor u vastgehouden tot {lapses}. Daarna vervalt het en gaat de tijd naar "
        "de volgende wachtende patiënt; u blijft hoe dan ook op de wachtlijst.",
        "offer_how": "Om het te accepteren of af te wijzen, opent u de app waarmee u zich op de wachtlijst hebt "
        "gezet (die bewaart uw beheertoken):",
        "offer_after": "Accepteren geeft u de afspraak en de bevestiging; afwijzen houdt u op de lijst.",
        "offer_call": "Of bel de praktijk met referentie {ref}.",
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
