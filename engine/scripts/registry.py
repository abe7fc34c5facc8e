"""Loads the Lua scripts once per Redis client and turns their status replies into typed results or errors.

Every script replies either with a bare value (``search``, ``schedule``, ``expire``) or with an array whose
first element is a status: ``OK`` and a few benign statuses are returned to the caller as typed values; every
other status is a domain error, made in one place (``STATUS_ERRORS``) so that a status means the same thing
whichever script answers it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from engine import errors, limits
from engine.codec import text
from engine.redis.scripts import Scripts, SyncScripts

LUA_DIR = Path(__file__).resolve().parent.parent.parent / "lua"
NAMES = (
    "hold",
    "release",
    "expire",
    "book",
    "cancel",
    "reschedule",
    "search",
    "schedule",
    "apply_day",
    "put_entity",
    "api_key",
    "app_key",
    "limit",
    "restore",
    "restore_seq",
    "waitlist_join",
    "waitlist_decline",
    "waitlist_leave",
    "tidy",
    "trim",
    "close_gap",
    "lease",
    "restore_waitlist",
    "waitlist_reindex",
    "waitlist_tidy",
    "waitlist_offer_free",
    "waitlist_counters",
    "series_hold",
    "series_book",
    "restore_series",
)


def _read(name: str) -> str:
    path = LUA_DIR / f"{name}.lua"
    if path.exists():
        return path.read_text()
    return resources.files("lua").joinpath(f"{name}.lua").read_text()  # installed as a package


def _parts(name: str) -> list[tuple[str, str]]:
    """The pieces of the script as sent to Redis, in order, each with the file it comes from."""
    limits_lua = (
        f"local MAX_DURATION_S = {limits.MAX_DURATION_S}  -- engine/limits.py\n"
        f"local OFFERS_PER_INTERVAL = {limits.OFFERS_PER_INTERVAL}  -- engine/limits.py\n"
        f"local MAX_OCCUPATION_S = {limits.MAX_OCCUPATION_S}  -- engine/limits.py\n"
        f"local MAX_BUFFER_S = {limits.MAX_BUFFER_MINUTES * 60}  -- engine/limits.py\n"
    )
    return [
        ("engine/limits.py", limits_lua),
        ("lua/_prelude.lua", _read("_prelude") + "\n"),
        (f"lua/{name}.lua", _read(name)),
    ]


def source(name: str) -> str:
    """The script as sent to Redis: the engine's limits, the shared prelude, then the script itself."""
    return "".join(part for _, part in _parts(name))


def locate(name: str, line: int) -> str:
    """Where line ``line`` of the script ``name`` as sent to Redis (Redis's ``user_script:<line>``) comes from:
    ``lua/<file>.lua:<line in that file>`` (``engine/limits.py`` for the limits put in front)."""
    first = 1
    for origin, part in _parts(name):
        count = part.count("\n") + (0 if part.endswith("\n") else 1)
        if line < first + count:
            return f"{origin}:{line - first + 1}" if origin.startswith("lua/") else origin
        first += count
    return f"lua/{name}.lua:?"


class Shape(NamedTuple):
    """What a script's header declares: how many KEYS and ARGV it names (numbered 1..n), and whether more follow
    (a waitlist kit, per-practitioner or per-hold keys, pairs): then a call passes at least that many."""

    keys: int
    argv: int
    more_keys: bool
    more_argv: bool


_MORE = re.compile(r"\bthen (?:the|one|per)\b|\bper (?:practitioner|hold)\b|\bpairs\b|\d\.\.|waitlist kit")
_NUMBERED = re.compile(r"(?:^|[\s(,])(\d+)(?=[\s,])")


def header(name: str) -> str:
    """The script's leading comment block (its declaration), without the comment marks."""
    out = []
    for line in _read(name).splitlines():
        if not line.startswith("--"):
            break
        out.append(line[2:])
    return "\n".join(out)


def shape(name: str) -> Shape:
    """The KEYS and ARGV the header of ``name`` declares (``-- KEYS: 1 ... 2 ...`` then ``-- ARGV: 1 ...``)."""
    text = header(name)
    keys_part = text.partition("KEYS:")[2].partition("ARGV:")[0]
    argv_part = re.split(r"\n\s?(?:Returns|A retry|Or |[A-Z][a-z]+ )", text.partition("ARGV:")[2])[0]

    def count(part: str) -> int:
        return max((int(n) for n in _NUMBERED.findall(part)), default=0)

    return Shape(count(keys_part), count(argv_part), bool(_MORE.search(keys_part)), bool(_MORE.search(argv_part)))


# The scripts whose success a client is told with 201/200 and that must survive a failover (invariant 2).
REPLICATED = frozenset(("book", "cancel", "reschedule", "series_book"))


class Lua(Scripts):
    """The engine's scripts on one async Redis client (``engine.redis.scripts.Scripts``): every script of ``NAMES``,
    book, cancel and reschedule confirmed by a replica on a cluster (invariant 2)."""

    def __init__(self, redis: Any, replica_wait_ms: int = 0) -> None:
        super().__init__(redis, {name: source(name) for name in NAMES}, replica_wait_ms, REPLICATED, locate)

    async def call(self, call: Call, script: str) -> Reply:
        """Run a status-replying script call built for ``script``."""
        if call.script != script:
            raise TypeError(f"a {call.script} call was passed to {script}")
        return reply(await self.run(call.script, call.keys, call.args))


class Ref(NamedTuple):
    """What a script was asked about, so that an error can name it."""

    kind: str = ""
    ident: str = ""
    hold_id: str = ""


class SyncLua(SyncScripts):
    """The same scripts for the synchronous callers (persister, retention, lease sharing, the notifier's outbox).
    ``lua(call)`` runs a ``Call``."""

    def __init__(self, redis: Any, names: Sequence[str] = NAMES) -> None:
        super().__init__(redis, {name: source(name) for name in names}, locate)


class Call(NamedTuple):
    """One script call: the script, its KEYS and ARGV in its header's order, and what it is about."""

    script: str
    keys: list[str]
    args: list[Any]
    ref: Ref = Ref()


Reply = list[Any]  # [status, *payload] with the status decoded


def reply(raw: Sequence[Any]) -> Reply:
    return [text(raw[0]), *raw[1:]]


def _arg(rest: Reply, i: int = 0) -> str:
    return text(rest[i]) if len(rest) > i else ""


STATUS_ERRORS: dict[str, Callable[[Ref, Reply], errors.BookingError]] = {
    "NOT_FOUND": lambda ref, rest: errors.NotFoundError(ref.kind, ref.ident),
    "HOLD_NOT_FOUND": lambda ref, rest: errors.NotFoundError("hold", ref.hold_id),
    "USED": lambda ref, rest: errors.HoldUsedError(ref.hold_id, _arg(rest) or None),
    "EXPIRED": lambda ref, rest: errors.HoldExpiredError(ref.hold_id, _arg(rest)),
    "UNAVAILABLE": lambda ref, rest: errors.SlotUnavailableError(_arg(rest)),
    "IDEM_MISMATCH": lambda ref, rest: errors.IdempotencyKeyReusedError(),
    "OVERLAP": lambda ref, rest: errors.OverlapDetectedError("a booked appointment already overlaps this hold"),
    "CANCELLED": lambda ref, rest: errors.AppointmentCancelledError(ref.ident),
    "STALE": lambda ref, rest: errors.StaleScheduleError(),
    "KIT": lambda ref, rest: errors.OfferKitError(),
    "NO_OFFER": lambda ref, rest: errors.NoOfferError(ref.ident, _arg(rest)),
    "OFFER_EXPIRED": lambda ref, rest: errors.OfferExpiredError(ref.ident),
    "OFFER": lambda ref, rest: errors.OfferHoldError(ref.hold_id),
}


def fail(res: Reply, ref: Ref) -> NoReturn:
    """Raise the domain error of a status reply (every status not handled by the caller ends here)."""
    make = STATUS_ERRORS.get(res[0])
    if make is None:
        raise AssertionError(f"unexpected script answer {res!r}")
    raise make(ref, res[1:])
