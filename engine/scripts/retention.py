"""Typed calls of the scripts that keep Redis bounded: the appointment tidy (``tidy``) and the booked series tidy
(``series_tidy``), stream trimming that records what a consumer group without a running consumer missed
(``trim``), and forgetting such a gap once its group caught up from the database (``close_gap``).

They run from the persister and the notification outbox on their synchronous clients, so each has a pure builder
``<name>_call(...) -> Call`` and a reply decoder, and an async function for the engine's own client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from engine import keys
from engine.codec import text
from engine.scripts.registry import Call, Lua


class Tidied(msgspec.Struct, frozen=True):
    """'OK' (removed from Redis) or 'KEEP' with the reason: 'missing', 'recent' or 'unstored'."""

    status: str
    reason: str = ""


def tidy_call(
    *, cut_s: int, practice_id: str, appointment_id: str, practitioner_id: str, stored_version: int, stored_status: str
) -> Call:
    pid = practice_id
    return Call(
        "tidy",
        [keys.appointment(pid, appointment_id), keys.claims(pid, practitioner_id)],
        [cut_s, appointment_id, stored_version, stored_status, practitioner_id],
    )


def tidy_reply(raw: Sequence[Any]) -> Tidied:
    return Tidied(text(raw[0]), text(raw[1]) if len(raw) > 1 else "")


async def tidy(lua: Lua, call: Call) -> Tidied:
    """Remove an appointment that ended before the cut, only if the database holds its current state."""
    return tidy_reply(await lua.run(call.script, call.keys, call.args))


def series_tidy_call(*, practice_id: str, series_id: str, appointment_ids: Sequence[str]) -> Call:
    """Remove a booked series whose occurrences all left Redis (``appointment_ids``: as its hash names them)."""
    pid = practice_id
    return Call(
        "series_tidy",
        [keys.series(pid, series_id), *(keys.appointment(pid, a) for a in appointment_ids)],
        [",".join(appointment_ids)],
    )


async def series_tidy(lua: Lua, call: Call) -> Tidied:
    return tidy_reply(await lua.run(call.script, call.keys, call.args))


def trim_call(*, practice_id: str, min_ms: int, left_behind: Sequence[tuple[str, int]] = ()) -> Call:
    """Trim the practice's stream below ``<min_ms>-0``; ``left_behind``: (group, ms of the oldest entry it still
    needed) of each group that does not hold trimming back."""
    args: list[Any] = [min_ms]
    for group, from_ms in left_behind:
        args += [group, from_ms]
    return Call("trim", [keys.events(practice_id), keys.stream_gaps(practice_id)], args)


async def trim(lua: Lua, call: Call) -> int:
    return int(await lua.run(call.script, call.keys, call.args))


def close_gap_call(*, practice_id: str, group: str, gap: str) -> Call:
    return Call("close_gap", [keys.stream_gaps(practice_id)], [group, gap])


def close_gap_reply(raw: Sequence[Any]) -> str | None:
    """None when the gap was forgotten; otherwise the gap as it is now ('' when none is left)."""
    return None if text(raw[0]) == "OK" else text(raw[1])


async def close_gap(lua: Lua, call: Call) -> str | None:
    return close_gap_reply(await lua.run(call.script, call.keys, call.args))
