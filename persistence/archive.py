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
from persistence.tables import appointments, series, series_occurrences, waitlist_entries


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


def series_fields(row: Any, occurrences: list[Any]) -> dict[str, str]:
    """A ``series`` row and its ``series_occurrences`` rows (in order) -> the booked series' Redis hash, exactly as
    series_book.lua leaves it (reconciliation puts it back; the archive reads it once it left Redis)."""
    return {
        "state": "booked",
        "practice_id": row["practice_id"],
        "practitioner_id": row["practitioner_id"],
        "visit_type_id": row["visit_type_id"],
        "every_days": str(row["every_days"]),
        "count": str(row["count"]),
        "holds": ",".join(o["hold_id"] for o in occurrences),
        "appointments": ",".join(o["appointment_id"] for o in occurrences),
        "manage_hash": row["manage_hash"],
        "booked_ms": str(row["booked_at_ms"]),
    }


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

    def _read_series(self, series_id: str) -> dict[str, str] | None:
        with self.db.connect() as c:
            row = c.execute(select(series).where(series.c.id == series_id)).mappings().first()
            if row is None:
                return None
            occ = (
                c.execute(
                    select(series_occurrences)
                    .where(series_occurrences.c.series_id == series_id)
                    .order_by(series_occurrences.c.position)
                )
                .mappings()
                .all()
            )
        return series_fields(row, list(occ))

    async def series(self, series_id: str) -> dict[str, str] | None:
        """A booked series that left Redis (persistence/retention.py), as its hash was."""
        return await asyncio.to_thread(self._read_series, series_id)
