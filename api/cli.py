"""The `booking` command line."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from engine.settings import Settings


def _run_serve(args: argparse.Namespace) -> int:
    from api.serving import serve

    return serve(args)


def _seed_demo(args: argparse.Namespace) -> int:
    from api.demo import describe, seed_over_http

    token = os.environ.get("BOOKING_ADMIN_TOKEN")
    print(describe(seed_over_http(args.url, token), args.url))
    return 0


def _demo_env(args: argparse.Namespace) -> int:
    from api.demo import DEMO_ENV_FILE

    path = os.path.join(os.path.abspath(Settings.from_env().data_dir), DEMO_ENV_FILE)
    try:
        with open(path) as f:
            print(f.read(), end="")
    except FileNotFoundError:
        print(f"booking demo-env: no demo seeded yet ({path} is missing): run scripts/serve (booking serve --demo) "
              "and wait for its 'Demo practice' line", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from persistence import migrate
    from persistence.db import database_url, make_engine

    settings = Settings.from_env()
    url = database_url(settings)
    before, after = migrate.upgrade(make_engine(url))
    where = url.split("@")[-1]
    print(
        f"database {where}: schema {'created' if before is None else 'at ' + before} -> {after}"
        if before != after
        else f"database {where}: schema already at {after}"
    )
    return 0


def _engine_and_clients(settings: Settings) -> tuple[Any, Any, Any]:
    from api.app import make_redis
    from engine.service import BookingEngine
    from persistence import runtime

    if settings.embedded:
        raise SystemExit("this command needs REDIS_URL (the embedded store lives inside `booking serve`)")
    redis_async = make_redis(settings)
    return BookingEngine(redis_async, settings), runtime.sync_redis(settings), runtime.open_database(settings)


def _persister(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from persistence import runtime

    settings = Settings.from_env()
    eng, redis_sync, db = _engine_and_clients(settings)
    asyncio.run(runtime.reconcile_if_needed(eng, redis_sync, db, force=True))
    print("persister: start-up reconciliation done; consuming event streams", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    lease_ms = int(args.lease_seconds * 1000)
    runtime.persister_for(
        settings, redis_sync, db, batch=args.batch, sharing="members", lease_ms=lease_ms,
        on_lost=lambda practices: runtime.reconcile_practices(settings, db, practices),
    ).run(stop)  # fmt: skip
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    import asyncio

    from persistence.reconcile import reconcile

    settings = Settings.from_env()
    if args.replay_quarantine:  # the events the persister set aside (docs/operations.md, "Quarantine")
        return _replay_quarantine(settings, strip=args.strip_controls)
    eng, redis_sync, db = _engine_and_clients(settings)
    only = None
    if args.lost:  # only the practices whose data Redis lost (persistence/shards.py)
        from persistence.shards import lost_practices, relist_practices

        if relist_practices(redis_sync, db):
            print("listed again in bk:v1:practices: practices its shard had lost")
        lost = lost_practices(redis_sync, db)
        for pid, why in sorted(lost.items()):
            print(f"lost: practice {pid}: {why}")
        if not lost:
            print("no practice lost its data")
            return 0
        only = set(lost)

    async def go() -> Any:
        try:
            return await reconcile(eng, redis_sync, db, practices_only=only)
        finally:
            await eng.redis.aclose()

    report = asyncio.run(go())
    return 1 if report.conflicts else 0


def _replay_quarantine(settings: Settings, *, strip: bool) -> int:
    """Apply again the events the persister set aside, print each outcome; exit 1 while some remain."""
    from persistence import quarantine, runtime

    if settings.embedded:
        raise SystemExit("this command needs REDIS_URL (the embedded store lives inside `booking serve`)")
    redis_sync, db = runtime.sync_redis(settings), runtime.open_database(settings)
    try:
        _, left = quarantine.replay(db, strip=strip)
        quarantine.publish(redis_sync, db)
    finally:
        db.dispose()
        redis_sync.close()
    return 1 if left else 0


def _worker(args: argparse.Namespace) -> int:
    import signal

    from engine.redis import clients
    from persistence import runtime
    from persistence.notify.worker import NotificationWorker

    settings = Settings.from_env()
    if settings.embedded:
        raise SystemExit("booking worker needs REDIS_URL (the embedded mode runs the worker inside `booking serve`)")
    redis_sync, queue = runtime.sync_redis(settings), clients.queue_redis(settings)
    redis_sync.ping()  # unreachable at start: one line and exit 4 (main); later outages are retried
    queue.ping()
    worker = NotificationWorker(settings, redis_sync, runtime.open_database(settings), queue=queue)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    print(
        f"worker: notifications ({'SMTP ' + settings.smtp_url if settings.smtp_url else 'logged only'}), "
        f"reminders at {', '.join(str(o) + 's' for o in settings.reminder_offsets)} before",
        flush=True,
    )
    stop.wait()
    worker.close()
    return 0


def _audit(args: argparse.Namespace) -> int:
    from persistence import audit, runtime

    if args.action != "verify":
        print("usage: booking audit verify [--practice ID]", file=sys.stderr)
        return 2
    db = runtime.open_database(Settings.from_env())
    if args.practice is not None and not audit.known_practice(db, args.practice):
        print(f"booking audit verify: no practice {args.practice!r} in the database", file=sys.stderr)
        return 1
    return 0 if audit.verify(db, practice_id=args.practice) else 1


COMMANDS = "booking.commands"


def _dev_cluster(args: argparse.Namespace) -> int:
    import signal

    from api.devcluster import DevCluster

    cluster = DevCluster(args.base_port)
    print(f"dev-cluster: starting 6 Redis nodes on 127.0.0.1:{cluster.ports[0]}-{cluster.ports[-1]} in "
          f"{cluster.folder}", flush=True)  # fmt: skip
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cluster.start()
    try:
        pids = ", ".join(str(p.pid) for p in cluster.procs)
        print(
            f"dev-cluster: ready (3 primaries {', '.join(map(str, cluster.primaries()))}, 3 replicas; pids {pids})\n"
            f"  export REDIS_CLUSTER=1 REDIS_URL={cluster.url}\n"
            "  export QUEUE_REDIS_URL=redis://127.0.0.1:6379/0   # rq needs a standalone Redis\n"
            "Ctrl-C stops the cluster and removes its folder.",
            flush=True,
        )
        stop.wait()
    finally:
        print("dev-cluster: stopping", flush=True)
        cluster.stop()
    return 0


def _commands() -> dict[str, EntryPoint]:
    """`booking NAME ...` commands that live outside the API (`booking bench`: the load-test suite), registered
    as entry points in pyproject.toml. Each parses its own options and is imported only when it runs, so the
    API never imports them."""
    return {ep.name: ep for ep in entry_points(group=COMMANDS)}


def parser() -> argparse.ArgumentParser:
    from api.gauges import package_version

    p = argparse.ArgumentParser(prog="booking", description="Booking engine for medical practices")
    p.add_argument("--version", action="version", version=f"booking {package_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the HTTP API (embedded Redis unless REDIS_URL is set)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    s.add_argument("--workers", type=int, default=1, help="API worker processes (default: %(default)s)")
    s.add_argument("--demo", action="store_true", help="seed the demo practice once the server is up")
    s.add_argument("--log-level", default="info", help="debug, info, warning or error (default: %(default)s)")
    s.add_argument(
        "--server",
        choices=["granian", "uvicorn"],
        default="granian",
        help="HTTP server; uvicorn for comparison (default: %(default)s)",
    )
    s.add_argument(
        "--backpressure",
        type=int,
        default=16384,
        help="granian: connections each worker serves at once (a keep-alive connection holds its place for its "
        "whole life; more wait in the accept queue) (default: %(default)s)",
    )
    s.set_defaults(run=_run_serve)
    d = sub.add_parser("seed-demo", help="create a demo practice through the HTTP API of a running server")
    d.add_argument("--url", default="http://127.0.0.1:8000", help="the running server (default: %(default)s)")
    d.set_defaults(run=_seed_demo)
    de = sub.add_parser(
        "demo-env",
        help="print the README tour's variables (export B PRACTICE DOC VISIT) of the demo practice that "
        '`booking serve --demo` seeded (from BOOKING_DATA_DIR, default var/): eval "$(booking demo-env)"',
    )
    de.set_defaults(run=_demo_env)
    m = sub.add_parser("migrate", help="create or upgrade the database schema (DATABASE_URL)")
    m.set_defaults(run=_migrate)
    pe = sub.add_parser("persister", help="write-behind: event streams to the database (reconciles at start)")
    pe.add_argument("--batch", type=int, default=500, help="events per transaction at most (default: %(default)s)")
    pe.add_argument(
        "--lease-seconds", type=float, default=6.0,
        help="practice leases and heartbeats: a dead persister's share is taken over within about 4/3 of this "
        "(default: %(default)s)",
    )  # fmt: skip
    pe.set_defaults(run=_persister)
    rc = sub.add_parser("reconcile", help="compare Redis and the database both ways, repair, print every difference")
    rc.add_argument("--lost", action="store_true", help="only the practices whose data Redis lost (per shard)")
    rc.add_argument(
        "--replay-quarantine",
        action="store_true",
        help="only apply again the events the persister set aside (after fixing their cause); exit 1 if some remain",
    )
    rc.add_argument(
        "--strip-controls",
        action="store_true",
        help="with --replay-quarantine: first remove control characters (NUL...) from the texts of each event's record",
    )
    rc.set_defaults(run=_reconcile)
    au = sub.add_parser("audit", help="audit trail tools")
    au.add_argument("action", choices=["verify"], help="verify: recompute every practice's hash chain")
    au.add_argument("--practice", default=None, help="only this practice's chain (default: every practice)")
    au.set_defaults(run=_audit)
    wk = sub.add_parser("worker", help="notifications: outbox, rq-scheduler and rq jobs (SMTP_URL)")
    wk.set_defaults(run=_worker)
    dc = sub.add_parser(
        "dev-cluster", help="a local 6-node Redis Cluster (3 primaries, 3 replicas) until Ctrl-C; prints REDIS_URL"
    )
    dc.add_argument(
        "--base-port", type=int, default=7001, help="first node's port (the six use base..base+5; default: %(default)s)"
    )
    dc.set_defaults(run=_dev_cluster)
    for name, ep in sorted(_commands().items()):  # listed in --help; main() runs them before parsing
        sub.add_parser(name, help=f"from {ep.module}: see `booking {name} --help`", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    from api import logs

    fmt = os.environ.get("LOG_FORMAT", "").strip() or "text"  # a bad value: the command says so (ConfigError)
    logs.configure(fmt if fmt in logs.FORMATS else "text")
    argv = sys.argv[1:] if argv is None else argv
    command = _commands().get(argv[0]) if argv else None
    if command is not None:  # it parses its own options
        try:
            run = command.load()
        except ModuleNotFoundError as exc:  # its extra is not installed (`booking bench`: hdrh, matplotlib, ...)
            print(
                f"booking {argv[0]}: needs the `{argv[0]}` extra (no module {exc.name!r}): "
                f"pip install 'booking-engine[{argv[0]}]' (in a checkout: scripts/test installs it)",
                file=sys.stderr,
            )
            return 2
        return int(run(argv[1:]))
    args = parser().parse_args(argv)
    from engine.settings import ConfigError
    from persistence.migrate import SchemaMismatchError

    try:
        return int(args.run(args))
    except SchemaMismatchError as exc:
        print(f"booking {args.command}: {exc}", file=sys.stderr)
        return 3
    except ConfigError as exc:
        print(f"booking {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        line = dependency_failure(exc)
        if line is None:
            raise
        print(f"booking {args.command}: {line}", file=sys.stderr)
        return DEPENDENCY_EXIT


DEPENDENCY_EXIT = 4  # a database or Redis the command needs cannot be reached or logged in to


def dependency_failure(exc: BaseException) -> str | None:
    """The one line that says which store failed and what to do (no traceback), or None when ``exc`` (or what
    caused it) is not a store that cannot be reached."""
    from engine.redis.errors import describe_failure as redis_failure
    from persistence.db import database_url
    from persistence.db import describe_failure as database_failure

    settings = Settings.from_env()
    redis_urls = {"REDIS_URL": settings.store_url, "QUEUE_REDIS_URL": settings.queue_redis_url}
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:  # the exception, what caused it, and the members of a group
        one = todo.pop(0)
        if id(one) in seen:
            continue
        seen.add(id(one))
        line = database_failure(one, database_url(settings)) or redis_failure(one, redis_urls)
        if line is not None:
            return line
        todo += [e for e in (one.__cause__, one.__context__) if e is not None]
        todo += list(getattr(one, "exceptions", ()))
    return None


if __name__ == "__main__":
    sys.exit(main())
