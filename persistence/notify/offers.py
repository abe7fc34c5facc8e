"""The re-check of a waitlist offer mail, just before it is sent: the entry is still ``offered`` at the very
version the mail was planned for (every change of an entry bumps it, so the same offer), and its hold is live
and still the entry's. Otherwise nothing is sent: never an offer mail for an interval no longer held for the
patient, or for an entry that left, declined, accepted or lapsed."""

from __future__ import annotations

import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import msgspec

from engine import keys, offer_notices
from engine.codec import text
from engine.model import WaitlistRecord
from engine.settings import WAITLIST_ACCEPT_URL
from persistence.notify.names import names


def accept_url(template: str, entry_id: str) -> str:
    """The app's offer page for an entry (``WAITLIST_ACCEPT_URL``; the id is URL-safe: ``<practice>.w<urlsafe>``)."""
    return template.replace("{entry_id}", quote(entry_id, safe=""))


def facts(
    redis: Any, row: Any, now_ms: int | None = None, accept: str = WAITLIST_ACCEPT_URL
) -> tuple[offer_notices.OfferFacts | None, str]:
    """The live offer as Redis holds it now, or None with the reason the mail is stale."""
    pid, entry_id = row.practice_id, row.appointment_id
    now = int(time.time() * 1000) if now_ms is None else now_ms
    raw = redis.hget(keys.waitlist_entries(pid), entry_id)
    if raw is None:
        return None, "entry unknown to Redis"
    entry = msgspec.json.decode(raw, type=WaitlistRecord)
    if entry.version != row.version:
        return None, f"entry is at version {entry.version}, this offer mail is for {row.version}"
    offer = entry.offer
    if entry.status != "offered" or offer is None:
        return None, f"entry is {entry.status}"
    hold = {text(k): text(v) for k, v in redis.hgetall(keys.hold(pid, offer.hold_id)).items()}
    if hold.get("state") != "held":
        return None, f"offer hold is {hold.get('state') or 'gone'}"
    if hold.get("entry_id") != entry.id:
        return None, "offer hold is not this entry's"
    expires = int(hold.get("expires_ms") or 0)
    if expires <= now:
        return None, "offer hold expired"
    n = names(redis, pid, offer.practitioner_id, entry.visit_type_id)
    return offer_notices.OfferFacts(
        notification_id=row.id,
        entry_id=entry.id,
        version=entry.version,
        hold_id=offer.hold_id,
        start=offer.start,
        end=offer.end,
        expires_ms=expires,
        timezone=n.timezone,
        practice_name=n.practice,
        practitioner_name=n.practitioner,
        visit_type_name=n.visit_type,
        patient_name=entry.patient.name,
        patient_email=entry.patient.email,
        accept_url=accept_url(accept, entry.id),
        language=entry.patient.language or n.language,
    ), ""


def compose(redis: Any, row: Any, sender: str, accept: str = WAITLIST_ACCEPT_URL) -> tuple[EmailMessage | None, str]:
    f, why = facts(redis, row, accept=accept)
    return (None, why) if f is None else (offer_notices.message(f, sender), "")
