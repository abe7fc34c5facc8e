"""Appointments: book a live hold, read, cancel and reschedule."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import msgspec

from engine import errors, ids, keys, scripts
from engine.catalog import Catalog
from engine.codec import encoder, text
from engine.context import Runtime
from engine.idempotency import IdempotencyKey, seal, unseal
from engine.model import SYSTEM, Appointment, Ctx, Patient
from engine.offers import Offers
from engine.scripts.waitlist import OfferKit

MOVE_ATTEMPTS = 5  # cancel and reschedule re-read an appointment that moved meanwhile, this many times


def patient_ref(practice_id: str, patient: Patient) -> str:
    """A pseudonymous patient id for the audit trail (no name, e-mail or phone leaves the record)."""
    return hashlib.sha256(f"{practice_id}:{patient.email.strip().lower()}".encode()).hexdigest()[:20]


def from_hash(practice_id: str, appointment_id: str, raw: dict[Any, Any]) -> tuple[Appointment, str] | None:
    """An appointment hash as Redis returns it (any client, sync or async) -> the record and the SHA-256 hash of
    its manage token; None when the hash is empty (unknown appointment)."""
    a = {text(k): text(v) for k, v in raw.items()}
    if not a:
        return None
    appt = Appointment(
        id=appointment_id,
        status=a["status"],
        version=int(a["version"] or 0),
        practice_id=practice_id,
        practitioner_id=a["practitioner_id"],
        visit_type_id=a["visit_type_id"],
        start=int(a["start"] or 0),
        end=int(a["end"] or 0),
        patient=msgspec.json.decode(a["patient"] or "{}", type=Patient),
        hold_id=a.get("hold_id"),
        cancel_reason=a.get("cancel_reason") or None,
    )
    return appt, a.get("manage_hash", "")


def _replay(prior: bytes, idem: IdempotencyKey) -> Appointment:
    """The appointment stored with the first booking under this Idempotency-Key (the whole record as Redis holds
    it: ``<fingerprint>\n<answer>``)."""
    fp, _, stored = prior.partition(b"\n")
    if fp.decode() != idem.fingerprint:
        raise errors.IdempotencyKeyReusedError()
    return _answer(stored, idem)


def _answer(stored: bytes, idem: IdempotencyKey) -> Appointment:
    """A stored booking answer: the appointment sealed without its interval (the booking does not read the hold
    first), then the interval book.lua appended from the hold, ``<sealed>\n<visit_type_id>\n<start>\n<end>``. An
    answer stored before the interval was appended has it sealed in and nothing after it."""
    sealed, *interval = stored.split(b"\n")
    appt = msgspec.json.decode(unseal(idem, sealed), type=Appointment)
    if len(interval) == 3:
        appt.visit_type_id, appt.start, appt.end = text(interval[0]), int(interval[1]), int(interval[2])
    return appt


class HoldInterval(NamedTuple):
    """A hold's practitioner, visit type and interval: fixed from its claim on (a reschedule's target)."""

    practitioner_id: str
    visit_type_id: str
    start: int
    end: int


class Found(NamedTuple):
    """An appointment as read: the record, the SHA-256 hash of its manage token, whether it was read from the
    archive (it ended more than the retention period ago and lives only in the durable store), and the interval
    of the hold asked about with it (a reschedule's target; None when not asked or not found)."""

    appointment: Appointment
    manage_hash: str
    archived: bool
    hold: HoldInterval | None = None


class Appointments:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        self.offers = Offers(rt, catalog)

    async def book(
        self,
        hold_id: str,
        patient: Patient,
        *,
        ctx: Ctx = SYSTEM,
        idem: IdempotencyKey | None = None,
        entry_id: str | None = None,
    ) -> tuple[Appointment, bool]:
        """Book a live hold; returns (the appointment with its manage token, whether this was a replay). A waitlist
        offer's hold is booked only by a privileged caller (staff, admin, the engine) or through its entry's
        accept (``entry_id``); anyone else is answered SlotUnavailableError."""
        pid, prac = ids.practice_of(hold_id, "h"), ids.practitioner_of_hold(hold_id)
        if pid is None or prac is None:
            raise errors.NotFoundError("hold", hold_id)
        token = ids.new_manage_token()
        appt = Appointment(
            id=ids.new_appointment_id(pid),
            status="booked",
            version=1,
            practice_id=pid,
            practitioner_id=prac,
            visit_type_id="",
            start=0,
            end=0,
            patient=patient,
            manage_token=token,
            hold_id=hold_id,
        )
        # the answer stored (sealed) for replays: book.lua answers a replay itself and appends the hold's interval
        record = b"" if idem is None else seal(idem, encoder.encode(appt))
        call = scripts.book_call(
            now_ms=self.rt.now_ms(),
            practice_id=pid,
            practitioner_id=prac,
            hold_id=hold_id,
            appointment_id=appt.id,
            patient_json=encoder.encode(patient),
            manage_hash=ids.token_hash(token),
            patient_ref=patient_ref(pid, patient),
            ctx=ctx,
            idem_ref=idem.ref if idem else None,
            fingerprint=idem.fingerprint if idem else "",
            record=record,
            offers="*" if ctx.privileged else (entry_id or ""),
        )
        res = await scripts.book(self.rt.lua, call)
        if isinstance(res, scripts.Replay) and idem is not None:
            return _answer(res.record, idem), True
        assert isinstance(res, scripts.Booked)
        appt.visit_type_id, appt.start, appt.end = res.visit_type_id, res.start, res.end
        return appt, False

    async def replayed(self, practice_id: str, idem: IdempotencyKey) -> Appointment | None:
        """The appointment a booking under this Idempotency-Key already made, if any."""
        prior = await self.rt.redis.get(keys.idempotency(practice_id, "book", idem.ref))
        return None if prior is None else _replay(prior, idem)

    async def get_appointment(self, appointment_id: str) -> tuple[Appointment, str]:
        """The appointment and the SHA-256 hash of its manage token (from the archive once it left Redis)."""
        found = await self.find(appointment_id)
        return found.appointment, found.manage_hash

    async def find(self, appointment_id: str, hold_id: str | None = None) -> Found:
        """The appointment as read (``Found``); with ``hold_id`` (a reschedule's target), that hold's interval
        too, in the same round trip when both are in Redis."""
        pid = ids.practice_of(appointment_id, "a")
        if pid is None:
            raise errors.NotFoundError("appointment", appointment_id)
        hold = None
        if hold_id is not None and ids.practice_of(hold_id, "h") == pid:
            async with self.rt.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.appointment(pid, appointment_id))
                pipe.hmget(keys.hold(pid, hold_id), "practitioner_id", "visit_type_id", "start", "end")
                raw, (pr, vt, start, end) = await pipe.execute()
            if pr is not None and vt is not None and start is not None and end is not None:
                hold = HoldInterval(text(pr), text(vt), int(start), int(end))
        else:
            raw = await self.rt.redis.hgetall(keys.appointment(pid, appointment_id))
        found = from_hash(pid, appointment_id, raw)
        if found is not None:
            return Found(*found, archived=False, hold=hold)
        archived = await self.rt.archive.appointment(appointment_id) if self.rt.archive is not None else None
        if archived is None or archived[0].practice_id != pid:
            raise errors.NotFoundError("appointment", appointment_id)
        return Found(*archived, archived=True)

    async def _move(
        self,
        appointment_id: str,
        step: Callable[[Appointment], Awaitable[object]],
        answer: Callable[[Found, scripts.NewVersion], Appointment | None],
        what: str,
        archived_ok: bool,
        found: Found | None,
        hold_id: str | None = None,
    ) -> Appointment:
        """Run a cancel or reschedule step on the appointment as the caller read it (``found``; read here when
        None), re-reading it while it moved meanwhile (RETRY) or left Redis meanwhile (the tidy raced the step).
        The answer is the appointment as read with the script's change applied (``answer``); read again only
        when something else changed it in between (the version is not the next one). An archived appointment is
        never changed: a cancelled one is answered as it is when ``archived_ok`` (cancelling again changes
        nothing), anything else is refused."""
        for attempt in range(MOVE_ATTEMPTS):
            if found is None or attempt:
                found = await self.find(appointment_id, hold_id)
            appt = found.appointment
            if found.archived:
                if appt.status == "cancelled" and archived_ok:
                    return appt
                if appt.status == "cancelled":
                    raise errors.AppointmentCancelledError(appointment_id)
                raise errors.AppointmentArchivedError(appointment_id)
            try:
                res = await step(appt)
            except errors.NotFoundError as exc:
                if exc.kind != "appointment" or self.rt.archive is None:
                    raise
                continue
            if isinstance(res, scripts.NewVersion):
                changed = answer(found, res)
                return changed if changed is not None else (await self.get_appointment(appointment_id))[0]
        raise errors.BookingError(f"the appointment kept moving while it was being {what}; retry")

    async def cancel(
        self, appointment_id: str, reason: str = "", ctx: Ctx = SYSTEM, found: Found | None = None
    ) -> Appointment:
        """Cancel (idempotent): the interval is offered again at once. ``found``: the appointment as the caller
        just read it (``find``), so that it is not read again."""
        if found is not None and not found.archived and found.appointment.status == "cancelled":
            return found.appointment  # cancelled is final: cancelling again changes nothing

        def cancelled(read: Found, res: scripts.NewVersion) -> Appointment | None:
            appt = read.appointment
            if res.already or res.version != appt.version + 1:  # cancelled or changed by another request meanwhile
                return None
            return msgspec.structs.replace(appt, status="cancelled", version=res.version, cancel_reason=reason or None)

        async def step(appt: Appointment) -> scripts.NewVersion | scripts.Retry:
            async def with_kit(kit: OfferKit) -> scripts.NewVersion | scripts.Retry:
                call = scripts.cancel_call(
                    now_ms=self.rt.now_ms(),
                    practice_id=appt.practice_id,
                    appointment_id=appt.id,
                    practitioner_id=appt.practitioner_id,
                    reason=reason,
                    ctx=ctx,
                    kit=kit,
                )
                return await scripts.cancel(self.rt.lua, call)

            return await self.offers.run(appt.practice_id, appt.practitioner_id, with_kit)

        return await self._move(appointment_id, step, cancelled, "cancelled", archived_ok=True, found=found)

    async def reschedule(
        self, appointment_id: str, hold_id: str, ctx: Ctx = SYSTEM, found: Found | None = None
    ) -> Appointment:
        """Move a booked appointment onto a live hold of the same practice, atomically (version + 1). ``found``:
        the appointment as the caller just read it with this hold (``find(appointment_id, hold_id)``)."""

        def moved(read: Found, res: scripts.NewVersion) -> Appointment | None:
            appt, h = read.appointment, read.hold
            if h is None or res.version != appt.version + 1:  # the hold unread, or changed by another request
                return None
            return msgspec.structs.replace(
                appt, practitioner_id=h.practitioner_id, visit_type_id=h.visit_type_id, start=h.start, end=h.end,
                version=res.version, hold_id=hold_id,
            )  # fmt: skip

        hold_pid, hold_prac = ids.practice_of(hold_id, "h"), ids.practitioner_of_hold(hold_id)
        move_id = secrets.token_hex(8)

        async def step(appt: Appointment) -> scripts.NewVersion | scripts.Retry:
            if hold_pid != appt.practice_id or hold_prac is None:
                raise errors.NotFoundError("hold", hold_id)  # holds of other practices do not exist here

            async def with_kit(kit: OfferKit) -> scripts.NewVersion | scripts.Retry:
                assert hold_prac is not None
                return await scripts.reschedule(
                    self.rt.lua,
                    now_ms=self.rt.now_ms(),
                    practice_id=appt.practice_id,
                    appointment_id=appt.id,
                    practitioner_id=appt.practitioner_id,
                    hold_id=hold_id,
                    hold_practitioner_id=hold_prac,
                    move_id=move_id,
                    ctx=ctx,
                    kit=kit,
                    offers="*" if ctx.privileged else "",
                )

            return await self.offers.run(appt.practice_id, appt.practitioner_id, with_kit)

        return await self._move(
            appointment_id, step, moved, "rescheduled", archived_ok=False, found=found, hold_id=hold_id
        )
