"""The `booking` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from typing import Any

from engine.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings.from_env()
    if settings.embedded and args.workers > 1:
        print(
            "booking serve: the embedded store lives in one process; set REDIS_URL to run several workers",
            file=sys.stderr,
        )
        return 2
    base = f"http://{args.host}:{args.port}"
    if args.demo:
        threading.Thread(target=_seed_when_up, args=(base, settings.admin_token), daemon=True).start()
    mode = "embedded (in-process Redis, nothing to install)" if settings.embedded else settings.redis_url
    print(f"booking: serving on {base} ({mode}); OpenAPI at {base}/schema", flush=True)
    if args.workers > 1:
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


def _seed_when_up(base: str, token: str | None) -> None:
    import httpx

    from api.demo import describe, seed_over_http

    for _ in range(100):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    print(describe(seed_over_http(base, token), base), flush=True)


def _seed_demo(args: argparse.Namespace) -> int:
    from api.demo import describe, seed_over_http

    token = os.environ.get("BOOKING_ADMIN_TOKEN")
    print(describe(seed_over_http(args.url, token), args.url))
    return 0


def _later(issue: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        print(f"booking {args.command}: not available yet ({issue})", file=sys.stderr)
        return 2

    return run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="booking", description="Booking engine for medical practices")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the HTTP API (embedded Redis unless REDIS_URL is set)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--demo", action="store_true", help="seed the demo practice once the server is up")
    s.add_argument("--log-level", default="info")
    s.set_defaults(run=_serve)
    d = sub.add_parser("seed-demo", help="create a demo practice through the HTTP API of a running server")
    d.add_argument("--url", default="http://127.0.0.1:8000")
    d.set_defaults(run=_seed_demo)
    for name, issue in [
        ("persister", "write-behind persister"),
        ("worker", "notification worker"),
        ("reconcile", "reconciliation"),
        ("migrate", "database schema"),
        ("audit", "audit verification"),
        ("bench", "benchmark suite"),
    ]:
        x = sub.add_parser(name, help=f"{issue}")
        x.add_argument("rest", nargs="*")
        x.set_defaults(run=_later(issue))
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
