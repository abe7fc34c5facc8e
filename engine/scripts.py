"""Loads the Lua scripts once and exposes them by name (each file opens with its KEYS/ARGV contract)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
NAMES = (
    "hold",
    "release",
    "expire",
    "book",
    "cancel",
    "search",
    "put_schedule",
    "apply_day",
    "put_entity",
    "restore",
    "reschedule",
    "api_key",
    "limit",
)


def _read(name: str) -> str:
    path = LUA_DIR / f"{name}.lua"
    if path.exists():
        return path.read_text()
    return resources.files("lua").joinpath(f"{name}.lua").read_text()  # installed as a package


def source(name: str) -> str:
    """The script as sent to Redis: the shared prelude, then the script itself."""
    return _read("_prelude") + "\n" + _read(name)


class Scripts:
    """One registered script object per Lua file, for one Redis client."""

    def __init__(self, redis: Any) -> None:
        self._scripts = {name: redis.register_script(source(name)) for name in NAMES}

    def __getitem__(self, name: str) -> Any:
        return self._scripts[name]
