"""Every script call a test makes is checked against the script's header (its declaration: ``-- KEYS: 1 ...``,
``-- ARGV: 1 ...``; engine/scripts/registry.py ``shape``): a builder that passes one key or argument more or less
than the header names fails the test that made the call, whatever that test asserts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from engine.redis.scripts import Scripts, SyncScripts
from engine.scripts import registry


def check(name: str, keys: Sequence[Any], args: Sequence[Any]) -> None:
    if name not in registry.NAMES:
        return  # a test's own script
    want = registry.shape(name)
    for what, n, declared, more in (("KEYS", len(keys), want.keys, want.more_keys),
                                    ("ARGV", len(args), want.argv, want.more_argv)):  # fmt: skip
        if n < declared or (n > declared and not more):
            raise AssertionError(
                f"{name}.lua: its header declares {declared}{' or more' if more else ''} {what}, the call passed {n}"
            )


@contextlib.contextmanager
def checked() -> Iterator[None]:
    run, batch, call = Scripts.run, Scripts.run_batch, SyncScripts.__call__

    async def checked_run(
        self: Scripts, name: str, keys: Sequence[str], args: Sequence[Any], client: Any = None
    ) -> Any:
        check(name, keys, args)
        return await run(self, name, keys, args, client)

    async def checked_batch(self: Scripts, calls: Sequence[Any]) -> list[Any]:
        for c in calls:
            check(c.script, c.keys, c.args)
        return await batch(self, calls)

    def checked_call(self: SyncScripts, c: Any) -> Any:
        check(c.script, c.keys, c.args)
        return call(self, c)

    Scripts.run, Scripts.run_batch, SyncScripts.__call__ = checked_run, checked_batch, checked_call  # type: ignore[method-assign]
    try:
        yield
    finally:
        Scripts.run, Scripts.run_batch, SyncScripts.__call__ = run, batch, call  # type: ignore[method-assign]
