"""Appointments read from the durable store: the archive of those that left Redis (persistence/retention.py), and
the one conversion from an ``appointments`` row to the engine's record (reconciliation uses it too)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine.model import Appointment, Patient, WaitlistRecord
from persistence import waitlist_rows
from persistence.tables import appointments, waitlist_entries


def epoch(value: dt.datetime) -> int:
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def patient_of(row: Any) -> Patient:
    """The patient of an ``appointments`` row (its language only when one was chosen)."""
    language = row.get("patient_language")
    patient = Patient(name=row["patient_name"], email=row["patient_email"], phone=row["patient_phone"])
    return msgspec.structs.replace(patient, language=language) if language else patient


def appointment_from_row(row: Any) -> Appointment:
    """An ``appointments`` row (a mapping) -> the engine's record, as Redis would give it back."""
    return Appointment(
        id=row["id"],
        status=row["status"],
        version=row["version"],
        practice_id=row["practice_id"],
        practitioner_id=row["practitioner_id"],
        visit_type_id=row["visit_type_id"],
        start=epoch(row["start_at"]),
        end=epoch(row["end_at"]),
        patient=patient_of(row),
        hold_id=row["hold_id"],
        cancel_reason=row["cancel_reason"] or None,
    )


class ArchivedAppointments:
    """The engine's ``AppointmentArchive`` on the database (engine/context.py): one indexed read by id, run in a
    thread. A database that is down raises SQLAlchemy's OperationalError, which the API answers with 503."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def _read(self, appointment_id: str) -> tuple[Appointment, str] | None:
        with self.db.connect() as c:
            row = c.execute(select(appointments).where(appointments.c.id == appointment_id)).mappings().first()
        return None if row is None else (appointment_from_row(row), row["manage_hash"])

    async def appointment(self, appointment_id: str) -> tuple[Appointment, str] | None:
        return await asyncio.to_thread(self._read, appointment_id)

    def _read_entry(self, entry_id: str) -> WaitlistRecord | None:
        with self.db.connect() as c:
            row = c.execute(select(waitlist_entries).where(waitlist_entries.c.id == entry_id)).mappings().first()
        return None if row is None else waitlist_rows.record(row)

    async def waitlist_entry(self, entry_id: str) -> WaitlistRecord | None:
        """A waitlist entry that ended and left Redis (persistence/waitlist_tidy.py), as the database holds it."""
        return await asyncio.to_thread(self._read_entry, entry_id)
