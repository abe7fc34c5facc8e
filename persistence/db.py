"""The durable store: PostgreSQL in production (DATABASE_URL), an SQLite file in the embedded default."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

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


def is_postgres(eng: Engine) -> bool:
    return eng.dialect.name == "postgresql"
