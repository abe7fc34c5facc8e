"""`booking serve`: the API under granian (default) or uvicorn, and the demo practice seeded once it is up."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from engine.settings import Settings


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings.from_env()
    if settings.embedded and args.workers > 1:
        print(
            "booking serve: the embedded store lives in one process; set REDIS_URL to run several workers",
            file=sys.stderr,
        )
        return 2
    from api import metrics_dir

    if settings.require_durable_redis and not settings.embedded:  # before any worker starts: one line, exit 2
        from api.durability import check_at_start
        from engine import clients

        check_at_start(settings, clients.sync_redis(settings))
    metrics_dir.prepare()  # every worker writes its metrics there; a scrape adds them all up
    base = f"http://{args.host}:{args.port}"
    if args.demo:
        _start_seeder(base, settings.admin_token)
    mode = "embedded (in-process Redis, nothing to install)" if settings.embedded else settings.redis_url
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
        )
    else:
        from api.app import create_app

        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


def _serve_granian(args: argparse.Namespace) -> None:
    """Granian (Rust HTTP/1.1 server, uvloop), measured against uvicorn in docs/benchmarks.md. Its
    ``backpressure`` counts connections, not requests: a lower value than the number of keep-alive clients
    leaves the surplus waiting for seconds, so the default is high."""
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

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
        respawn_failed_workers=True,
    ).serve()


def _start_seeder(base: str, token: str | None) -> subprocess.Popen[bytes]:
    """The demo seeding runs in a process of its own. A thread would share this process's import locks with the
    workers granian forks: a worker forked while the thread imported (httpx imports lazily on its first
    request) inherited a held module lock and hung for ever in its own imports (seen as a fresh-clone CI's demo
    never answering). It stops by itself once this process is gone."""
    env = {**os.environ, "BOOKING_SEED_BASE": base, "BOOKING_SEED_PARENT": str(os.getpid())}
    if token:
        env["BOOKING_SEED_TOKEN"] = token  # not on the command line: `ps` shows that to every user
    code = "from api.serving import seed_main; seed_main()"
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def seed_main() -> None:
    """Entry of the seeding process (``_start_seeder``)."""
    _seed_when_up(os.environ["BOOKING_SEED_BASE"], os.environ.get("BOOKING_SEED_TOKEN") or None,
                  int(os.environ.get("BOOKING_SEED_PARENT", "0")))  # fmt: skip


def _seed_when_up(base: str, token: str | None, parent: int = 0) -> None:
    import httpx

    from api.demo import describe, seed_over_http

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
            print(describe(seed_over_http(base, token), base), flush=True)
            return
        except Exception as exc:  # noqa: BLE001 - say why, then try again: the server may still be warming up
            print(f"booking serve --demo: seeding failed ({exc}); {'retrying' if attempt < 4 else 'giving up'}",
                  file=sys.stderr, flush=True)  # fmt: skip
            time.sleep(2)
