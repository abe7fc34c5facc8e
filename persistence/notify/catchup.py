"""The outbox catching up from the database on stream entries that were trimmed while no worker ran.

The persister trims a stream without waiting for a group whose consumers are all gone or idle
(persistence/trimming.py); ``trim.lua`` then records, in the same step, the range of entry times that group may
have missed (``keys.stream_gaps``: group -> ``<from_ms>:<to_ms>``). Everything trimmed was stored by the
persister first, so the database knows every booking, rescheduling and cancellation of that range: its audit
rows name the appointments, and each appointment's row gives its state now. For each, the outbox plans the
notifications of that state (a confirmation of the version booked or moved to, or the cancellation notice), exactly
as if it had read the entries late: a job re-checks the appointment's version before sending, so notifications of
older versions would have been skipped anyway. Rows are unique per (appointment, kind, offset, version), so a
change also read from the stream, or caught up twice, is planned once. The gap is then forgotten
(``close_gap.lua``), unless a trim widened it meanwhile: then the next round takes the wider range.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine import keys
from engine.codec import text
from engine.scripts import retention as scripts
from persistence.archive import epoch
from persistence.notify.change import Change
from persistence.tables import appointments, audit_events

if TYPE_CHECKING:
    from persistence.notify.outbox import Outbox

log = logging.getLogger("booking.notify")
INTERVAL_S = 30.0  # how often the outbox looks for gaps (and once when it starts)
MARGIN_MS = 10 * 60_000  # audit times come from the API's clock, stream entry ids from Redis's: widen the range
CHUNK = 500
ACTIONS = ("book", "reschedule", "cancel")


def gaps(redis: Any, group: str, practice_ids: list[str]) -> list[tuple[str, str]]:
    """(practice id, gap) of every practice whose stream has a gap for ``group``: one pipelined round trip."""
    if not practice_ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for pid in practice_ids:
        pipe.hget(keys.stream_gaps(pid), group)
    return [(pid, text(v)) for pid, v in zip(practice_ids, pipe.execute(), strict=True) if v is not None]


def changes(db: Engine, practice_id: str, from_ms: int, to_ms: int) -> list[Change]:
    """The state now of every appointment of the practice booked, moved or cancelled within the range."""
    out: list[Change] = []
    with db.connect() as c:
        ids = list(
            c.execute(
                select(audit_events.c.appointment_id)
                .where(
                    audit_events.c.practice_id == practice_id,
                    audit_events.c.action.in_(ACTIONS),
                    audit_events.c.at_ms >= from_ms - MARGIN_MS,
                    audit_events.c.at_ms < to_ms + MARGIN_MS,
                    audit_events.c.appointment_id.is_not(None),
                )
                .distinct()
            ).scalars()
        )
        for i in range(0, len(ids), CHUNK):
            for r in c.execute(select(appointments).where(appointments.c.id.in_(ids[i : i + CHUNK]))).mappings():
                kind = "cancel" if r["status"] == "cancelled" else "book" if r["version"] == 1 else "reschedule"
                out.append(
                    Change(r["id"], r["practice_id"], kind, r["version"], epoch(r["start_at"]), r["updated_at_ms"])
                )
    return out


def catch_up(outbox: Outbox) -> int:
    """Plan the notifications (and the webhook events: persistence/webhooks/catchup.py) of every gap of the
    outbox's group; returns the number of appointments planned."""
    from persistence.webhooks import catchup as webhook_catchup  # (it imports this module)

    done = 0
    for pid, gap in gaps(outbox.redis, outbox.group, list(outbox.streams.values())):
        from_ms, _, to_ms = gap.partition(":")
        found = changes(outbox.db, pid, int(from_ms), int(to_ms))
        for i in range(0, len(found), CHUNK):
            outbox.apply(found[i : i + CHUNK])
        hooked = webhook_catchup.prepared(outbox.db, pid, int(from_ms), int(to_ms))  # their webhook events
        for i in range(0, len(hooked), CHUNK):
            outbox.apply([], hooked[i : i + CHUNK])
        done += len(found)
        call = scripts.close_gap_call(practice_id=pid, group=outbox.group, gap=gap)
        now = scripts.close_gap_reply(outbox.lua(call))
        log.info(
            "practice %s: caught up on %d appointment(s) from the database (stream entries %s trimmed while no "
            "worker ran)%s", pid, len(found), gap, f"; the gap grew to {now}, next round" if now else "",
        )  # fmt: skip
    return done
