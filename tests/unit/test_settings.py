"""Configuration written once (issue 20 item 8): each setting's variable, default and meaning live in the Settings
field's metadata; docs/api.md's table is checked against it; every bad value is a ConfigError naming its
variable, and `booking serve` says so in one line and exits 2. No servers."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from engine.settings import ConfigError, Settings, Variable, documented, variables
from tests.support.config import ROOT
from tests.support.servers import run_cli

# read by other modules, not Settings fields: variable -> who reads it
ELSEWHERE = {"PROMETHEUS_MULTIPROC_DIR": "api/metrics_dir.py"}


def _docs_table() -> dict[str, tuple[str, str]]:
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## Configuration (environment)", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.fullmatch(r"\| `([A-Z0-9_]+)` \| (.*) \| (.*) \|", line)
        if m:
            rows[m[1]] = (m[2], m[3])
    return rows


def test_the_docs_configuration_table_is_the_settings_metadata() -> None:
    table = _docs_table()
    assert set(table) - {name for name, _, _ in documented()} == set(ELSEWHERE)
    for name, meaning, default in documented():
        assert name in table, f"{name} is missing from docs/api.md's configuration table"
        assert table[name] == (meaning, default), name


def _other_value(v: Variable) -> str:
    """A valid value other than the default."""
    if v.kind is bool:
        return "0" if v.default else "1"
    if v.kind in (int, float):
        return str(v.default + 1)
    if v.field == "reminder_offsets":
        return "3h"
    if v.field == "manage_url_template":
        return "https://app.example/appointments/{appointment_id}"
    if v.field == "waitlist_accept_url":
        return "https://app.example/offers/{entry_id}"
    if v.field.endswith("_url"):
        return "redis://127.0.0.1:1/0"
    if v.field == "log_format":
        return "json"
    return "something else"


@pytest.mark.parametrize("v", variables(), ids=lambda v: v.env)
def test_every_variable_sets_its_field(v: Variable) -> None:
    env = {v.env: _other_value(v)}
    if v.field == "redis_cluster":  # a cluster needs its nodes and a queue
        env |= {"REDIS_URL": "redis://127.0.0.1:7001", "QUEUE_REDIS_URL": "redis://127.0.0.1:6379/0"}
    got = getattr(Settings.from_env(env), v.field)
    assert got != v.default and got == (v.parse(env[v.env]))


BAD: list[tuple[str, str]] = [
    (v.env, raw)
    for v in variables()
    for raw in (["many"] if v.kind in (int, float, bool) else ["24x"] if v.field == "reminder_offsets" else [])
] + [
    ("HOLD_TTL_SECONDS", "0"),
    ("LOG_FORMAT", "xml"),
    ("MANAGE_URL_TEMPLATE", "https://app.example/appointments"),
    ("HOLD_TTL_SECONDS", "-5"),
    ("WAITLIST_OFFER_SECONDS", "0"),
    ("REDIS_POOL_SIZE", "0"),
    ("REDIS_POOL_TIMEOUT_SECONDS", "0"),
    ("SEARCH_CACHE_BYTES", "-1"),
    ("STALE_READ_SECONDS", "-1"),
    ("REPLICA_WAIT_MS", "-1"),
    ("NOTIFY_MAX_ATTEMPTS", "0"),
    ("NOTIFY_LEASE_SECONDS", "0"),
    ("LIMIT_LIVE_HOLDS", "0"),
    ("APPOINTMENT_RETENTION_DAYS", "29"),
    ("STREAM_GROUP_IDLE_SECONDS", "0"),
    ("REDIS_CLUSTER", "maybe"),
    ("BOOKING_AUDIT_SEARCHES", "off-ish"),
]


@pytest.mark.parametrize(("name", "raw"), BAD, ids=[f"{n}={r}" for n, r in BAD])
def test_every_bad_value_is_a_config_error_naming_its_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


def test_unset_and_empty_variables_keep_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({v.env: "" for v in variables()}) == Settings()
    assert Settings.from_env({"REDIS_URL": "redis://h:1", "REDIS_CLUSTER": "1", "QUEUE_REDIS_URL": "redis://q:1"})\
        .replica_wait_ms == 500  # fmt: skip


def test_booking_serve_with_a_bad_value_says_so_in_one_line_and_exits_2() -> None:
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    res = run_cli({**env, "HOLD_TTL_SECONDS": "0"}, "serve", "--port", "1", timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == ["booking serve: HOLD_TTL_SECONDS must be at least 1 (it is '0')"]
