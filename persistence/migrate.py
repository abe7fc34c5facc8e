"""`booking migrate` and the start-up check that refuses an unknown schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent / "migrations"


class SchemaMismatchError(RuntimeError):
    """The database is at a revision this code does not know (or not migrated at all)."""


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def current(eng: Engine) -> str | None:
    with eng.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(eng: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema; returns (revision before, revision after)."""
    before = current(eng)
    cfg = _config()
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return before, head()


def ensure_current(eng: Engine) -> None:
    rev, want = current(eng), head()
    if rev != want:
        raise SchemaMismatchError(
            f"database schema is at revision {rev or 'none'}, this code needs {want}: run `booking migrate`"
        )
