"""The README's one-minute tour, run as written (issue 21: its dates were hard-coded and failed once past, its
variables were never set, so a newcomer's copy-paste failed). Its shell block is taken from README.md and run
with bash against `booking serve --demo` (embedded, as `scripts/serve` runs it); every `curl` in it must answer
2xx, each one recorded, so the README cannot rot again."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.config import ROOT
from tests.support.databases import fresh_database
from tests.support.processes import Procs
from tests.support.servers import CLI, RedisServer, free_port, serve_env, wait_until

pytestmark = [pytest.mark.skipif(shutil.which("jq") is None, reason="the tour needs jq")]

# every curl of the tour answers through this: its status recorded, a 4xx or 5xx fails the tour there
CURL_RECORDING = r"""
curl() {
  local out code
  out=$(command curl -sS -w '\n%{http_code}' "$@") || return 1
  code=${out##*$'\n'}
  printf '%s\n' "${out%$'\n'*}"
  local args="$*"
  printf '%s %s\n' "$code" "${args//$'\n'/ }" >> "$TOUR_STATUSES"
  if [ "$code" -ge 400 ]; then echo "tour: HTTP $code from curl $*: ${out%$'\n'*}" >&2; return 1; fi
}
"""


def tour_blocks(readme: str) -> list[str]:
    """The ```bash blocks of the section "A one-minute tour"."""
    section = readme.split("## A one-minute tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def test_the_readme_has_two_setup_commands_and_a_tour_that_sets_its_variables() -> None:
    readme = (ROOT / "README.md").read_text()
    two = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"```bash\n(.*?)```", two, re.S) == ["scripts/serve\n", "scripts/test\n"]
    [tour] = tour_blocks(readme)
    assert not re.search(r"20\d\d-\d\d-\d\d", tour), "a date written into the tour fails once it is past"
    used = set(re.findall(r"\$\{?([A-Z_]+)", tour))
    set_here = set(re.findall(r"(?:^|\s)([A-Z_]+)=", tour))
    if 'eval "$(.venv/bin/booking demo-env)"' in tour:
        set_here |= {"B", "PRACTICE", "DOC", "VISIT"}
    assert used and used <= set_here, f"used but never set by the tour: {used - set_here}"


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    data, log, statuses = tmp_path / "data", tmp_path / "serve.log", tmp_path / "statuses"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "BOOKING_ADMIN_TOKEN")}
    env |= {"BOOKING_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    server = processes.spawn([sys.executable, "-m", "api.cli", "serve", "--demo", "--port", str(free_port())], env,
                             log=log)  # fmt: skip
    try:

        def seeded() -> bool:
            if server.poll() is not None:
                pytest.fail(f"booking serve --demo exited with {server.returncode}:\n{log.read_text()}")
            return (data / "demo.env").is_file()

        wait_until(seeded, 180, "the demo practice and its demo.env")
        # the tour runs from a checkout; here a folder whose .venv/bin/booking is this interpreter's
        shim = tmp_path / "checkout" / ".venv" / "bin" / "booking"
        shim.parent.mkdir(parents=True)
        shim.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m api.cli "$@"\n')
        shim.chmod(0o755)
        [tour] = tour_blocks((ROOT / "README.md").read_text())
        script = tmp_path / "tour.sh"
        script.write_text(CURL_RECORDING + tour)
        done = processes.run(["bash", "-eo", "pipefail", str(script)], {**env, "TOUR_STATUSES": str(statuses)},
                             timeout=120, cwd=shim.parents[2])  # fmt: skip
        ran = statuses.read_text().splitlines() if statuses.exists() else []
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{ran}"
        calls = sum(line.count("curl -") for line in tour.splitlines() if not line.lstrip().startswith("#"))
        assert len(ran) == calls and all(line[0] == "2" for line in ran), "\n".join(ran)
        answers = done.stdout.splitlines()
        assert '"status":"offered"' in answers[-2] and '"status":"booked"' in answers[-1], answers
    finally:
        processes.stop(server)


def test_serve_demo_on_a_real_redis_makes_an_admin_token_seeds_and_prints_the_ids(procs: Procs, tmp_path: Path) -> None:
    """`REDIS_URL=... scripts/serve` without BOOKING_ADMIN_TOKEN could not seed its demo (401: setup is open in the
    embedded mode only) and printed no ids. It makes a token for the run, prints it once, seeds, and writes the
    tour's variables."""
    import datetime as dt

    import httpx

    rs = RedisServer(procs, tmp_path / "redis", aof=False)
    rs.start()
    env = serve_env(rs.url, fresh_database("booking_tour"), BOOKING_DATA_DIR=str(tmp_path / "data"))
    del env["BOOKING_ADMIN_TOKEN"]
    proc = procs.start("serve", [*CLI, "serve", "--demo", "--port", str(free_port())], env)

    def printed() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"booking serve --demo exited with {proc.returncode}:\n{procs.log_of(proc)}")
        return "The README tour's variables" in procs.log_of(proc)

    wait_until(printed, 120, "the demo's ids")
    out = procs.log_of(proc)
    token = re.search(r"this run's admin token: (\S+)", out)
    assert token is not None and "Demo practice 'Rue de Rivoli Family Practice'" in out, out
    tour = dict(re.findall(r"(\w+)=(\S+)", (tmp_path / "data" / "demo.env").read_text()))
    assert {"B", "PRACTICE", "DOC", "VISIT"} <= set(tour) and f"id={tour['PRACTICE']}" in out
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    got = httpx.get(f"{tour['B']}/v1/practices/{tour['PRACTICE']}/availability",
                    params={"date": tomorrow, "days": 7, "visit_type_id": tour["VISIT"]}, timeout=10)  # fmt: skip
    assert got.status_code == 200 and got.json()["slots"], got.text
    made = httpx.post(f"{tour['B']}/v1/practices", json={"name": "Other", "timezone": "Europe/Paris"},
                      headers={"Authorization": f"Bearer {token.group(1)}"}, timeout=10)  # fmt: skip
    assert made.status_code == 201, made.text
    anonymous = httpx.post(f"{tour['B']}/v1/practices", json={"name": "X", "timezone": "Europe/Paris"}, timeout=10)
    assert anonymous.status_code == 401
