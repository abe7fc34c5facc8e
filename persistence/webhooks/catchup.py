"""Webhook events of stream entries trimmed while no worker ran, rebuilt from the audit trail.

When the outbox catches up on a gap (persistence/notify/catchup.py), the audit rows of the gap's range name every
booking, cancellation, rescheduling and waitlist offer, accept and lapse, with the stream entry id they came from
(the row id is ``<practice>-<entry id>``); their details carry the instants and versions, the appointment and
waitlist rows the visit type and the patient. Each becomes the event the stream would have given, under the same
``webhook-id`` (derived from the practice and entry id), so an event also read from the stream, or caught up
twice, is stored and delivered once."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Engine

from persistence.notify.catchup import MARGIN_MS
from persistence.tables import appointments, audit_events, practices, waitlist_entries
from persistence.webhooks.events import TYPES, Prepared, event_id, local, local_ms

STATUS_AFTER = {"waitlist_offer": "offered", "waitlist_accept": "booked", "waitlist_lapse": "waiting"}


def _people(c: Any, table: Any, ids: set[str], cols: tuple[str, ...]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = c.execute(select(table.c.id, *(table.c[n] for n in cols)).where(table.c.id.in_(sorted(ids)))).all()
    return {r[0]: r for r in rows}


def prepared(db: Engine, practice_id: str, from_ms: int, to_ms: int) -> list[Prepared]:
    a, w = appointments, waitlist_entries
    with db.connect() as c:
        rows = (
            c.execute(
                select(audit_events)
                .where(
                    audit_events.c.practice_id == practice_id,
                    audit_events.c.action.in_(list(TYPES)),
                    audit_events.c.at_ms >= from_ms - MARGIN_MS,
                    audit_events.c.at_ms < to_ms + MARGIN_MS,
                )
                .order_by(audit_events.c.chain_index)
            )
            .mappings()
            .all()
        )
        if not rows:
            return []
        tz = c.execute(select(practices.c.timezone).where(practices.c.id == practice_id)).scalar() or "UTC"
        details = [json.loads(r["detail"]) if r["detail"] not in ("", "[]") else {} for r in rows]
        appts = _people(
            c, a, {r["appointment_id"] for r in rows if r["appointment_id"] and not r["action"].startswith("waitlist")},
            ("visit_type_id", "patient_name", "patient_email"),
        )  # fmt: skip
        entries = _people(
            c, w, {d.get("entry_id") for r, d in zip(rows, details) if r["action"].startswith("waitlist")} - {None},
            ("patient",),
        )  # fmt: skip
    out = []
    for r, d in zip(rows, details):
        action, entry = r["action"], r["id"][len(practice_id) + 1 :]
        patient: dict[str, Any] | None = None
        if action.startswith("waitlist"):
            data: dict[str, Any] = {
                "entry_id": d.get("entry_id"),
                "practice_id": practice_id,
                "visit_type_id": d.get("visit_type_id"),
                "practitioner_id": r["practitioner_id"] or None,
                "status": STATUS_AFTER[action],
                "start": local(d.get("start"), tz),
                "end": local(d.get("end"), tz),
            }
            if d.get("expires_ms") is not None:
                data["expires_at"] = local_ms(d["expires_ms"], tz)
            if action == "waitlist_accept":
                data["appointment_id"] = d.get("appointment_id") or r["appointment_id"]
            subject = d.get("entry_id") or ""
            found = entries.get(subject)
            if found is not None:
                p = json.loads(found[1])
                patient = {"name": p.get("name"), "email": p.get("email")}
        else:
            found = appts.get(r["appointment_id"])
            data = {
                "appointment_id": r["appointment_id"],
                "practice_id": practice_id,
                "practitioner_id": r["practitioner_id"],
                "visit_type_id": d.get("visit_type_id") or (found[1] if found is not None else None),
                "status": "cancelled" if action == "cancel" else "booked",
                "version": d.get("version"),
                "start": local(d.get("start"), tz),
                "end": local(d.get("end"), tz),
            }
            if action == "reschedule":
                data["previous"] = {
                    "practitioner_id": d.get("from_practitioner_id"),
                    "start": local(d.get("from_start"), tz),
                    "end": local(d.get("from_end"), tz),
                }
            subject = r["appointment_id"] or ""
            if found is not None:
                patient = {"name": found[2], "email": found[3]}
        ms, _, n = entry.partition("-")
        typ = TYPES[action]
        out.append(
            Prepared(
                id=event_id(practice_id, entry),
                practice_id=practice_id,
                type=typ,
                subject_id=subject,
                at_ms=r["at_ms"],
                ord_ms=int(ms or 0),
                ord_n=int(n or 0),
                data=msgspec.json.encode({"type": typ, "timestamp": local_ms(r["at_ms"], tz), "data": data}).decode(),
                patient=msgspec.json.encode(patient).decode() if patient else None,
            )
        )
    return out
