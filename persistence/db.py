"""The durable store: PostgreSQL in production (DATABASE_URL), an SQLite file in the embedded default."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from engine.settings import Settings


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    os.makedirs(settings.data_dir, exist_ok=True)
    return f"sqlite:///{os.path.abspath(os.path.join(settings.data_dir, 'booking.db'))}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return eng
    # every outbound call has a bound: connecting, and each statement
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 3, "options": "-c statement_timeout=15000"},
    )


def shown_url(url: str) -> str:
    """``url`` as a message may show it: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(DATABASE_URL: not a database URL)"


def describe_failure(exc: BaseException, url: str) -> str | None:
    """One line for an operator when the database at ``url`` cannot be used: what failed, where (no password),
    what to do. None when ``exc`` is not a failure to reach or log in to the database."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return None
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    why = first.rsplit("FATAL:", 1)[-1].rsplit(" failed: ", 1)[-1].strip()
    parts = make_url(url)
    user, name = parts.username or "<user>", parts.database or "<database>"
    if "role" in why and "does not exist" in why:
        todo = (f"create it (as a PostgreSQL superuser: createuser {user} && createdb -O {user} {name}) or set "
                "DATABASE_URL to a role that exists")  # fmt: skip
    elif "database" in why and "does not exist" in why:
        todo = f"create it (createdb -O {user} {name}) or correct DATABASE_URL"
    elif "password" in why:
        todo = "correct the user or password in DATABASE_URL"
    elif "refused" in why or "timeout" in why.lower() or "could not" in why:
        todo = "start PostgreSQL there or correct DATABASE_URL"
    else:
        todo = "check DATABASE_URL and that the database accepts connections"
    return f"cannot use the database {shown_url(url)}: {why}; {todo}"


def is_postgres(eng: Engine) -> bool:
    return eng.dialect.name == "postgresql"
