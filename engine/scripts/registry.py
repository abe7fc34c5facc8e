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
    "resource",
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
    "series_cancel",
    "series_tidy",
)


def _read(name: str) -> str:
    path = LUA_DIR / f"{name}.lua"
    if path.exists():
        return path.read_text()
    return resources.files("lua").joinpath(f"{name}.lua").read_text()  # installed as a package


class Part(NamedTuple):
    """A piece of a script as sent to Redis: its text (whole lines), the file it comes from and the line of that
    file it starts at."""

    origin: str
    text: str
    first: int


_DECLARED = re.compile(r"^local (?:function )?([A-Za-z_]\w*)")
_NAME = re.compile(r"[A-Za-z_]\w*")


def _code(text: str) -> str:
    """``text`` without its Lua comments (``--`` outside a string literal to the end of the line)."""
    out = []
    for line in text.split("\n"):
        quote = ""
        for i, ch in enumerate(line):
            if quote:
                quote = "" if ch == quote and line[i - 1] != "\\" else quote
            elif ch in "'\"":
                quote = ch
            elif line.startswith("--", i):
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def _prelude_blocks() -> list[tuple[str | None, Part]]:
    """The prelude cut at its top-level declarations (``local function name`` / ``local name =``), each block with
    the comment lines right above it; the lines before the first declaration form a block named None."""
    lines = _read("_prelude").splitlines(keepends=True)
    starts: list[tuple[int, str | None]] = [(0, None)]
    for i, line in enumerate(lines):
        m = _DECLARED.match(line)
        if m:
            s = i
            while s > starts[-1][0] and lines[s - 1].startswith("--"):
                s -= 1  # its comment comes with it
            starts.append((s, m[1]))
    blocks = []
    for (s, name), (e, _) in zip(starts, [*starts[1:], (len(lines), None)], strict=True):
        text = "".join(lines[s:e])
        if not text:
            continue
        if not text.endswith("\n"):
            text += "\n"
        blocks.append((name, Part("lua/_prelude.lua", text, s + 1)))
    return blocks


def _used(blocks: list[tuple[str | None, Part]], script: str) -> list[Part]:
    """The prelude blocks ``script`` needs: the ones it names, the ones those name, and so on (``--- @include`` done
    by reading the code, so a script never carries helpers it does not call), in the prelude's order."""
    by_name = {name: part for name, part in blocks if name}
    wanted: set[str] = set()
    todo = set(_NAME.findall(_code(script))) & by_name.keys()
    while todo:
        name = todo.pop()
        wanted.add(name)
        todo |= (set(_NAME.findall(_code(by_name[name].text))) & by_name.keys()) - wanted - {name}
    return [part for name, part in blocks if name is None or name in wanted]


def _parts(name: str) -> list[Part]:
    """The pieces of the script as sent to Redis, in order: the engine's limits, the prelude blocks it uses, the
    script itself."""
    return _composed(f"lua/{name}.lua", _read(name))


def _composed(origin: str, script: str) -> list[Part]:
    limits_lua = (
        f"local MAX_DURATION_S = {limits.MAX_DURATION_S}  -- engine/limits.py\n"
        f"local OFFERS_PER_INTERVAL = {limits.OFFERS_PER_INTERVAL}  -- engine/limits.py\n"
        f"local MAX_OCCUPATION_S = {limits.MAX_OCCUPATION_S}  -- engine/limits.py\n"
        f"local MAX_BUFFER_S = {limits.MAX_BUFFER_MINUTES * 60}  -- engine/limits.py\n"
    )
    return [Part("engine/limits.py", limits_lua, 1), *_used(_prelude_blocks(), script), Part(origin, script, 1)]


def compose(script: str) -> str:
    """Lua text that is not one of the engine's scripts (a test probing a prelude helper) as it would be sent: the
    limits and the prelude helpers it uses in front of it."""
    return "".join(part.text for part in _composed("<text>", script))


def source(name: str) -> str:
    """The script as sent to Redis: the engine's limits, the prelude helpers it uses, then the script itself."""
    return "".join(part.text for part in _parts(name))


def locate(name: str, line: int) -> str:
    """Where line ``line`` of the script ``name`` as sent to Redis (Redis's ``user_script:<line>``) comes from:
    ``lua/<file>.lua:<line in that file>`` (``engine/limits.py`` for the limits put in front)."""
    first = 1
    for part in _parts(name):
        count = part.text.count("\n") + (0 if part.text.endswith("\n") else 1)
        if line < first + count:
            return f"{part.origin}:{part.first + line - first}" if part.origin.startswith("lua/") else part.origin
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
REPLICATED = frozenset(("book", "cancel", "reschedule", "series_book", "series_cancel"))


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
