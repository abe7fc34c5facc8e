"""The shipped API does not depend on the load-test suite: nothing under api/ imports `benchmarks`, and
`booking bench` reaches it through the `booking.commands` entry point (pyproject.toml), loaded only when run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.imports import imported_modules

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_under_api_imports_benchmarks_anywhere() -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "api").rglob("*.py"))
        for line, name in imported_modules(path)
        if name == "benchmarks" or name.startswith("benchmarks.")
    ]
    assert offending == []


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_api_and_its_command_line_load_without_benchmarks() -> None:
    code = (
        "import sys\n"
        "sys.modules['benchmarks'] = None  # any import of it now raises ImportError\n"
        "import api.app, api.cli\n"
        "api.app.create_app\n"
        "print(api.cli.parser().format_help())\n"
        "assert not [m for m in sys.modules if m.startswith('benchmarks.')]\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bench" in out.stdout, out.stdout  # still listed: registered, not imported


def test_booking_bench_help_still_reaches_the_suite() -> None:
    pytest.importorskip("hdrh", reason="the benchmark suite needs the `bench` extra: pip install -e '.[bench]'")
    out = _run("import sys, api.cli; sys.exit(api.cli.main(['bench', '--help']))")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "--quick" in out.stdout, out.stdout
