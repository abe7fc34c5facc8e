"""The audit chain covers every stored column (and tells NULL from ''), old rows still verify after the
upgrade, and GET /v1/audit accepts only the cursors it signed. Real PostgreSQL (and SQLite where named)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from alembic import command
from litestar.testing import TestClient
from sqlalchemy import text

from api.app import create_app
from engine import events as ev
from persistence import audit, chain, migrate, writer
from persistence.db import make_engine
from persistence.persister import Persister
from persistence.tables import audit_events
from tests.integration import test_persistence
from tests.integration.test_persistence import book_some, rows
from tests.support.config import AUTH, settings_for
from tests.support.databases import fresh_database

world = test_persistence.world  # the fixture: a flushed Redis db, a fresh database, an app and a persister

pytestmark = pytest.mark.integration

# One edit per column of audit_events, as a superuser with the append-only trigger off would make it.
# A nullable column that is NULL on the victim becomes '' (the NULL-versus-empty case).
TAMPER = {
    "id": "id = id || 'x'",
    "practice_id": "practice_id = practice_id || 'x'",
    "chain_index": "chain_index = -chain_index",
    "seq": "seq = seq + 1",
    "at_ms": "at_ms = at_ms + 1",
    "at": "at = at + interval '1 millisecond'",
    "action": "action = 'release'",
    "actor": "actor = actor || 'x'",
    "practitioner_id": "practitioner_id = coalesce(practitioner_id || 'x', '')",
    "hold_id": "hold_id = coalesce(hold_id || 'x', '')",
    "appointment_id": "appointment_id = coalesce(appointment_id || 'x', '')",
    "request_id": "request_id = coalesce(request_id || 'x', '')",
    "detail": "detail = detail || ' '",
    "prev_hash": "prev_hash = repeat('1', 64)",
    "hash": "hash = repeat('1', 64)",
    "hash_version": "hash_version = 1",
}


def superuser(db: Any, sql: str, **params: Any) -> None:
    with db.begin() as conn:
        conn.execute(text("alter table audit_events disable trigger audit_events_append_only"))
        conn.execute(text(sql), params)
        conn.execute(text("alter table audit_events enable trigger audit_events_append_only"))


def verify_after(db: Any, victim: dict[str, Any], change: str) -> list[str]:
    """Make ``change`` to the row ``victim``, verify, put the row back; returns what verify said when it
    found the chain broken (fails the test when it found it intact)."""
    superuser(db, f"update audit_events set {change} where id = :i", i=victim["id"])
    said: list[str] = []
    intact = audit.verify(db, out=said.append)
    with db.begin() as conn:
        conn.execute(text("alter table audit_events disable trigger audit_events_append_only"))
        conn.execute(
            text("delete from audit_events where id in (:i, :ix)"), {"i": victim["id"], "ix": victim["id"] + "x"}
        )
        conn.execute(audit_events.insert(), victim)
        conn.execute(text("alter table audit_events enable trigger audit_events_append_only"))
    assert not intact, f"{change}: verify said {said}"
    return said


def audit_rows(db: Any, where: str = "true") -> list[dict[str, Any]]:
    with db.connect() as c:
        q = sa.select(audit_events).where(text(where)).order_by(audit_events.c.chain_index)
        return [dict(r) for r in c.execute(q).mappings()]


def test_the_hash_covers_every_column_and_verify_names_each_altered_row(world: Any) -> None:
    c, db, p = world["client"], world["db"], world["persister"]
    book_some(c, n=2)
    p.drain()
    stored = {
        r[0] for r in rows(db, "select column_name from information_schema.columns where table_name = 'audit_events'")
    }
    assert stored == set(TAMPER) == set(chain.FIELDS) | {"hash"}  # a new column needs its place in both
    assert audit.verify(db, out=lambda _: None)
    everything = audit_rows(db)
    assert {r["hash_version"] for r in everything} == {chain.VERSION}
    victim = next(r for r in everything if r["action"] == "hold" and r["chain_index"] > 1)
    assert victim["appointment_id"] is None  # so its appointment_id edit is NULL -> ''
    for column, change in TAMPER.items():
        said = verify_after(db, victim, change)
        assert any(f"row {victim['id']}" in line and "BROKEN" in line for line in said), (column, said)
    assert audit.verify(db, out=lambda _: None)  # every row was put back


def test_null_and_empty_hash_apart(world: Any) -> None:
    c, db, p = world["client"], world["db"], world["persister"]
    book_some(c, n=1)
    p.drain()
    tried = 0
    for column in chain.NULLABLE:
        found = audit_rows(db, f"{column} is null")
        if not found:
            continue
        tried += 1
        said = verify_after(db, found[0], f"{column} = ''")
        assert any(f"row {found[0]['id']}" in line and "altered" in line for line in said), (column, said)
    assert tried >= 3
    assert chain.link(chain.GENESIS, {"request_id": None}) != chain.link(chain.GENESIS, {"request_id": ""})


def legacy_database() -> tuple[Any, list[dict[str, Any]]]:
    """A database at revision 0003 holding a chain of three rows as the code before 0004 wrote them,
    then upgraded to the current schema."""
    url = fresh_database("booking_audit_legacy")
    eng = make_engine(url)
    with eng.begin() as conn:
        cfg = migrate._config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    names = [n for n in chain.FIELDS if n != "hash_version"] + ["hash"]
    old_table = sa.table("audit_events", *[sa.column(n) for n in names])
    prev, legacy = chain.GENESIS, []
    for i in (1, 2, 3):
        at_ms = 1_790_000_000_123 + i * 1000
        row = {
            "id": f"P1-{i}-0",
            "practice_id": "P1",
            "chain_index": i,
            "seq": i,
            "at_ms": at_ms,
            "at": writer.utc(at_ms / 1000),
            "action": "search",
            "actor": "public:t",
            "practitioner_id": None,
            "hold_id": None,
            "appointment_id": None,
            "request_id": f"r{i}",
            "detail": '{"count":0}',
            "prev_hash": prev,
        }
        row["hash"] = prev = chain.link(prev, {**row, "hash_version": 1})
        legacy.append(row)
    with eng.begin() as conn:
        conn.execute(old_table.insert(), legacy)
        conn.execute(text("insert into audit_heads values ('P1', 3, 3, :h)"), {"h": prev})
    assert migrate.upgrade(eng) == ("0003", migrate.head())
    return eng, legacy


def test_rows_from_before_the_upgrade_keep_their_hashes_and_the_chain_goes_on_in_the_new_form() -> None:
    db, legacy = legacy_database()
    try:
        stored = audit_rows(db)
        assert [(r["hash"], r["hash_version"]) for r in stored] == [(r["hash"], 1) for r in legacy]
        assert audit.verify(db, out=lambda _: None)
        # the persister extends the chain with rows of the current form
        detail = ev.SearchDetail(date="2026-09-21", days=1, visit_type_id="v", count=0)
        nxt = ev.SearchPerformed(
            event_id="4-0",
            seq=4,
            at=1_790_000_009_000,
            actor="public:t",
            practice_id="P1",
            detail=detail,
            detail_raw=msgspec.json.encode(detail).decode(),
        )
        with db.begin() as conn:
            assert writer.apply(conn, [nxt]) == {"P1-4-0"}
        new = audit_rows(db, "chain_index = 4")[0]
        assert new["hash_version"] == chain.VERSION and new["prev_hash"] == legacy[-1]["hash"]
        assert audit.verify(db, out=lambda _: None)
        # what the old form leaves out is still checked on the old rows
        old = audit_rows(db, "chain_index = 2")[0]
        for change in ("seq = seq + 1", "at = at + interval '1 millisecond'", "hold_id = ''", "hash_version = 2"):
            said = verify_after(db, old, change)
            assert any(f"row {old['id']}" in line and "altered" in line for line in said), (change, said)
        said = verify_after(db, new, "seq = seq + 1")
        assert any(f"row {new['id']}" in line for line in said), said
        assert audit.verify(db, out=lambda _: None)
    finally:
        db.dispose()


def test_sqlite_stores_rows_that_verify_and_pages_with_signed_cursors(world: Any, tmp_path: Any) -> None:
    """The embedded mode's store: `at` comes back naive from SQLite and must hash the same."""
    book_some(world["client"], n=1)
    lite = make_engine(f"sqlite:///{tmp_path}/booking.db")
    migrate.upgrade(lite)
    try:
        Persister(world["redis"], lite, consumer="lite").drain()
        assert audit.verify(lite, out=lambda _: None)
        first, cursor = audit.query(lite, limit=2)
        rest, _ = audit.query(lite, limit=100, cursor=cursor)
        assert [r["chain_index"] for r in first + rest] == list(range(1, len(first + rest) + 1))
    finally:
        lite.dispose()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_only_cursors_this_deployment_signed_are_accepted(world: Any) -> None:
    c, db, p = world["client"], world["db"], world["persister"]
    ctx, _ = book_some(c, n=2)
    p.drain()
    pid = ctx["practice_id"]
    page = c.get("/v1/audit", params={"practice_id": pid, "limit": 3}).json()
    real = page["next"]
    row = audit_rows(db, "chain_index = 3")[0]

    def refused(name: str, cursor: str) -> None:
        r = c.get("/v1/audit", params={"practice_id": pid, "cursor": cursor})
        assert r.status_code == 422, (name, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), name
        assert r.json()["code"] == "validation_error", (name, r.json())

    refused("forged overflowing", b64(b"99999999999999999999999:x"))
    refused("valid-looking unsigned", b64(f"{row['at_ms']}:{row['id']}".encode()))
    body, tag = real.split(".")
    bad = {
        "unsigned with a dot": b64(f"{row['at_ms']}:{row['id']}".encode()) + ".",
        "another position, real tag": b64(f"{row['at_ms'] - 1}:{row['id']}".encode()).rstrip("=") + "." + tag,
        "forged tag": body + "." + b64(bytes(32)).rstrip("="),
        "signed by another key": audit._cursor(b"another deployment", row["at_ms"], row["id"]),
        "overflowing, another key": audit._cursor(b"another deployment", 10**22, "x"),
        "truncated tag": real[:-4],
        "truncated body": real[len(body) // 2 :],
        "half": real[: len(real) // 2],
        "padded": real + "==",
        "not base64": "!!!!.@@@@",
        "not ascii": "é" + real[1:],
        "two dots": real + "." + tag,
        "too long": "A" * 300,
    }
    for name, cursor in bad.items():
        refused(name, cursor)
    # the real cursor pages on, in this process and in another one of the same deployment
    rest = c.get("/v1/audit", params={"practice_id": pid, "cursor": real, "limit": 100}).json()
    everything = page["items"] + rest["items"]
    assert [i["chain_index"] for i in everything] == list(range(1, len(everything) + 1)) and len(everything) > 3
    with TestClient(create_app(settings_for(world["redis_url"], database_url=world["url"]))) as other:
        other.headers.update(AUTH)
        again = other.get("/v1/audit", params={"practice_id": pid, "cursor": real, "limit": 100}).json()
    assert again["items"] == rest["items"]


def test_a_filter_holding_a_nul_byte_matches_nothing_instead_of_failing(world: Any) -> None:
    c, p = world["client"], world["persister"]
    ctx, appts = book_some(c, n=1)
    p.drain()
    for name in ("practice_id", "appointment_id", "hold_id"):
        r = c.get("/v1/audit", params={name: "x\x00y"})
        assert (r.status_code, r.json()) == (200, {"items": [], "next": None}), (name, r.text)
    real = c.get("/v1/audit", params={"practice_id": ctx["practice_id"], "limit": 1}).json()["next"]
    assert c.get("/v1/audit", params={"hold_id": "\x00", "cursor": real[:-1]}).status_code == 422


def test_a_signed_cursor_naming_no_possible_position_is_refused() -> None:
    with pytest.raises(audit.InvalidCursorError):
        audit._uncursor(b"k", audit._cursor(b"k", 10**22, "x"))
    assert audit._uncursor(b"k", audit._cursor(b"k", 1_790_000_000_000, "P1-1-0")) == (1_790_000_000_000, "P1-1-0")
