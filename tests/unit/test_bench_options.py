"""`booking bench`'s options (issue 20 item 7): a dozen flags, the rarely used options as presets and `--set`, every
old option still reachable, the one-off outage study outside the default run."""

from __future__ import annotations

import pytest

pytest.importorskip("httptools", reason="the benchmark suite needs the `bench` extra")

from benchmarks import options


def test_a_dozen_flags() -> None:
    flags = [a for a in options.parser()._actions if a.option_strings and a.dest != "help"]
    assert len(flags) <= 13, [a.option_strings for a in flags]


def test_quick_is_the_quick_preset_and_flags_given_override_a_preset() -> None:
    assert options.parse(["--quick"]) == options.parse(["--preset", "quick"])
    quick = options.parse(["--quick"])
    assert (quick.quick, quick.rates, quick.practices, quick.presets) == (True, [150.0], 3, ["quick"])
    mixed = options.parse(["--quick", "--rates", "100,200"])
    assert (mixed.rates, mixed.duration) == ([100.0, 200.0], 1.5)
    assert options.parse(["--quick", "--set", "practices=7"]).practices == 7


def test_the_default_run_leaves_out_the_outage_study() -> None:
    default = options.parse([])
    assert "outage" not in default.scenarios and "search" in default.scenarios
    assert options.parse(["--preset", "outage"]).scenarios == ["outage"]
    assert "outage" in options.parse(["--scenarios", "search,outage"]).scenarios


def test_every_other_option_is_set_by_name() -> None:
    given = ["connections=500", "scale-sizes=10,20", "profile=yes", "server=uvicorn", "engine_env=A=1"]
    given += ["engine_env=B=2", "few_clients=", "db_prefix=x"]
    o = options.parse([arg for item in given for arg in ("--set", item)])
    assert (o.connections, o.scale_sizes, o.profile, o.server) == (500, [10, 20], True, "uvicorn")
    assert (o.engine_env, o.few_clients, o.db_prefix) == (["A=1", "B=2"], "", "x")
    assert options.parse(["--preset", "no-audit", "--set", "engine_env=C=3"]).engine_env == [
        "BOOKING_AUDIT_SEARCHES=0",
        "C=3",
    ]
    with pytest.raises(SystemExit, match="NAME one of"):
        options.parse(["--set", "no_such_option=1"])
    with pytest.raises(SystemExit, match="--set connections"):
        options.parse(["--set", "connections=many"])


def test_an_old_flag_is_refused_with_its_new_spelling() -> None:
    with pytest.raises(SystemExit, match="--connections is now --set connections=VALUE"):
        options.parse(["--connections", "500"])
    with pytest.raises(SystemExit, match="--lock-wait is now --set lock_wait=VALUE"):
        options.parse(["--lock-wait=5"])
    with pytest.raises(SystemExit, match="--preset no-limits"):
        options.parse(["--skip-limits"])
    with pytest.raises(SystemExit, match="no preset 'nope'"):
        options.parse(["--preset", "nope"])
