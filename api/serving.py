"""`booking serve`: the API under granian (default) or uvicorn, and the demo practice seeded once it is up."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from engine.settings import ConfigError, Settings

DEMO_STATE_FILE = "demo-practice"  # in the data folder: the embedded demo practice's id
SERVE_PID_ENV = "BOOKING_SERVE_PID"
log = logging.getLogger("booking.serve")


def exit_with_serve() -> None:
    """In a worker of `booking serve` (granian forks them; they outlived a `kill -9` of it, holding the port, the
    data folder and a persister): a daemon thread that stops this process once its parent is gone. SIGTERM
    first (the app shuts down in order), its end forced 5 s later (as safe as the kill -9 it follows). Nothing outside such a worker."""
    parent = int(os.environ.get(SERVE_PID_ENV) or 0)
    if not parent or parent == os.getpid() or os.getppid() != parent:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        log.warning("booking serve (pid %d) is gone: this worker stops", parent)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-serve", daemon=True).start()


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.embedded and args.workers > 1:
        print(
            "booking serve: the embedded store lives in one process; set REDIS_URL to run several workers",
            file=sys.stderr,
        )
        return 2
    check_port_free(args.host, args.port)
    if args.demo and not settings.embedded and not settings.admin_token:
        settings = _demo_admin_token(settings)
    os.environ[SERVE_PID_ENV] = str(os.getpid())  # its workers stop when it is gone (exit_with_serve)
    with reaping_children():
        if not settings.embedded or settings.embedded_redis_url is not None:
            return _serve(args, settings)
        return _serve_embedded(args, settings)


def _demo_admin_token(settings: Settings) -> Settings:
    """`booking serve --demo` on a real Redis without BOOKING_ADMIN_TOKEN: nobody could set up a practice (setup is
    open in the embedded mode only), so the demo could not be seeded (401). A token made for this run, printed
    once, for its workers (the environment) and the seeder."""
    import secrets

    token = secrets.token_urlsafe(24)
    os.environ["BOOKING_ADMIN_TOKEN"] = token
    print(f"booking serve --demo: no BOOKING_ADMIN_TOKEN set; this run's admin token: {token}", flush=True)
    return msgspec.structs.replace(settings, admin_token=token)


def _serve_embedded(args: argparse.Namespace, settings: Settings) -> int:
    from api.embedded import EmbeddedRedis

    server = EmbeddedRedis(settings.data_dir)  # its own child, killed by the kernel if this process dies
    url = server.start()
    _REAPED.append(server.reap)  # an unexpected end of the server is logged and reaped at once
    try:
        os.environ["BOOKING_EMBEDDED_REDIS_URL"] = url  # for the workers (Settings.from_env)
        return _serve(args, msgspec.structs.replace(settings, embedded_redis_url=url))
    finally:
        os.environ.pop("BOOKING_EMBEDDED_REDIS_URL", None)
        _REAPED.remove(server.reap)
        server.stop()


# what the SIGCHLD handler polls: a Popen's ``poll`` (or EmbeddedRedis.reap), each reaping its own child only
_REAPED: list[Callable[[], object]] = []


@contextlib.contextmanager
def reaping_children() -> Iterator[None]:
    """Meanwhile, a child of this process that ends (the demo seeder once it printed its ids, the embedded server
    if it dies) is reaped at once, not left a zombie until `booking serve` ends. A SIGCHLD handler in the main
    thread: no thread may run in the process granian forks its workers from (``_start_seeder``). It waits only
    for the children listed in ``_REAPED`` (granian and multiprocessing wait for their workers themselves), and
    does nothing in a forked worker that inherited it. The previous handler is put back at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def on_child(signum: int, frame: object) -> None:
        if os.getpid() == owner:
            for poll in list(_REAPED):
                poll()

    previous = signal.signal(signal.SIGCHLD, on_child)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)
        _REAPED.clear()


def check_port_free(host: str, port: int) -> None:
    """Fail at once, in one line, when another process listens on the port. granian binds with SO_REUSEPORT, so
    a second server would otherwise share the port with the first (and the kernel split connections between
    them); this probe binds without it, which a port held by a listener refuses."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (another booking serve?); "
                "stop it or choose another --port"
            ) from None


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api import metrics_dir

    if settings.require_durable_redis and not settings.embedded:  # before any worker starts: one line, exit 2
        from api.durability import check_at_start
        from engine.redis import clients

        check_at_start(settings, clients.sync_redis(settings))
    metrics_dir.prepare()  # every worker writes its metrics there; a scrape adds them all up
    base = f"http://{args.host}:{args.port}"
    if args.demo:
        seeder = _start_seeder(base, settings.admin_token, settings.data_dir, reuse=settings.embedded)
        _REAPED.append(seeder.poll)
    if settings.embedded:
        where = (settings.embedded_redis_url or "").removeprefix("redis://").removesuffix("/0")
        mode = f"embedded: a child Redis on {where}, its data in {os.path.abspath(settings.data_dir)}"
    else:
        mode = settings.redis_url or ""
    print(f"booking: serving on {base} ({mode}); OpenAPI at {base}/schema", flush=True)
    if args.server == "granian":
        _serve_granian(args)
    elif args.workers > 1:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=False,
            log_config=None,  # its lines go to the root handler, in LOG_FORMAT (api/logs.py)
        )
    else:
        from api.app import create_app

        uvicorn.run(
            create_app(settings), host=args.host, port=args.port, log_level=args.log_level, access_log=False,
            log_config=None,
        )  # fmt: skip
    return 0


def _serve_granian(args: argparse.Namespace) -> None:
    """Granian (Rust HTTP/1.1 server, uvloop), measured against uvicorn in docs/benchmarks.md. Its
    ``backpressure`` counts connections, not requests: a lower value than the number of keep-alive clients
    leaves the surplus waiting for seconds, so the default is high."""
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    from api import logs

    Server(
        "api.app:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        factory=True,
        backpressure=args.backpressure,
        backlog=4096,
        log_level=LogLevels(args.log_level.lower()),
        log_access=False,
        log_dictconfig=logs.granian_config(),  # its lines in LOG_FORMAT too (api/logs.py)
        respawn_failed_workers=True,
    ).serve()


def _start_seeder(base: str, token: str | None, data_dir: str, *, reuse: bool) -> subprocess.Popen[bytes]:
    """The demo seeding runs in a process of its own. A thread would share this process's import locks with the
    workers granian forks: a worker forked while the thread imported (httpx imports lazily on its first
    request) inherited a held module lock and hung for ever in its own imports (seen as a fresh-clone CI's demo
    never answering). It stops by itself once this process is gone. With ``data_dir`` (the embedded mode), the
    demo practice's id is kept there and the practice reused after a restart (api/demo.py ``seed_once``). The
    README tour's variables go to ``<data_dir>/demo.env`` (`booking demo-env` prints them)."""
    from api.demo import DEMO_ENV_FILE

    folder = os.path.abspath(data_dir)
    env = {**os.environ, "BOOKING_SEED_BASE": base, "BOOKING_SEED_PARENT": str(os.getpid())}
    env["BOOKING_SEED_ENV"] = os.path.join(folder, DEMO_ENV_FILE)
    if reuse:
        env["BOOKING_SEED_STATE"] = os.path.join(folder, DEMO_STATE_FILE)
    if token:
        env["BOOKING_SEED_TOKEN"] = token  # not on the command line: `ps` shows that to every user
    code = "from api.serving import seed_main; seed_main()"
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def seed_main() -> None:
    """Entry of the seeding process (``_start_seeder``)."""
    state, env_file = os.environ.get("BOOKING_SEED_STATE"), os.environ.get("BOOKING_SEED_ENV")
    _seed_when_up(os.environ["BOOKING_SEED_BASE"], os.environ.get("BOOKING_SEED_TOKEN") or None,
                  int(os.environ.get("BOOKING_SEED_PARENT", "0")), Path(state) if state else None,
                  Path(env_file) if env_file else None)  # fmt: skip


def _seed_when_up(
    base: str, token: str | None, parent: int = 0, state: Path | None = None, env_file: Path | None = None
) -> None:
    import httpx

    from api.demo import describe, seed_once, write_env

    deadline = time.monotonic() + 180  # a first start on a slow or busy machine takes a while
    while time.monotonic() < deadline:
        if parent and os.getppid() != parent:
            return  # the server is gone
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    for attempt in range(5):
        try:
            seeded = seed_once(base, token, state)
            if env_file is not None:
                write_env(env_file, seeded, base)
            print(describe(seeded, base), flush=True)
            return
        except Exception as exc:  # noqa: BLE001 - say why, then try again: the server may still be warming up
            print(f"booking serve --demo: seeding failed ({exc}); {'retrying' if attempt < 4 else 'giving up'}",
                  file=sys.stderr, flush=True)  # fmt: skip
            time.sleep(2)
