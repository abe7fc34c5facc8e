"""Open-loop load: requests start on a fixed schedule, whatever the speed of the answers.

Each generator process owns `connections / processes` keep-alive connections and sends its share of the
offered rate, one request every `processes / rate` seconds. A request that finds every connection busy
waits in a queue for the first one that frees up; its latency is still measured from its *scheduled* start,
so a slow server cannot slow the schedule down and hide its own delay (no coordinated omission). Idle
connections are reused oldest first, so all of them carry traffic.

Two kinds of late start are counted separately:
- `late_queued`: sent more than `late_ms` after schedule because no connection was free (the server's fault:
  with thousands of connections this means thousands of requests in flight);
- `late_generator`: a connection was free but the process itself was behind (its event loop or CPU was the
  limit, not the server). The report flags a run whose generator lag says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing as mp
import resource
import time
from collections import deque
from typing import Any

import msgspec
from hdrh.histogram import HdrHistogram

from benchmarks import scenarios
from benchmarks.dataset import Dataset
from benchmarks.httpclient import Connection, connect

LOWEST_US, HIGHEST_US, DIGITS = 1, 120_000_000, 3
_dec = msgspec.json.Decoder()


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


class Step(msgspec.Struct):
    scenario: str
    rate: float  # requests per second, all processes together
    duration: float  # measured seconds
    warmup: float  # seconds sent but not recorded, before the measured window
    connections: int  # all processes together
    start_at: float  # wall-clock time.time() of the first scheduled request
    seed: int = 1
    timeout: float = 10.0
    late_ms: float = 10.0
    drain: float = 10.0  # after the schedule ends, how long to wait for answers still in flight


class Outcome:
    """Counters and histograms of one process for one step."""

    def __init__(self) -> None:
        self.hist: dict[str, HdrHistogram] = {}
        self.codes: dict[str, dict[str, int]] = {}  # kind -> 'status code' -> count
        self.errors: dict[str, int] = {}  # 'kind status code' -> count (unexpected only)
        self.refused: dict[str, int] = {}  # expected refusals (races), same keys
        self.gen_lag = new_histogram()
        self.sent = self.done = self.in_window = self.done_in_window = 0
        self.late_queued = self.late_generator = 0
        self.reconnects = self.connect_errors = 0
        self.not_answered = 0

    def record(self, kind: str, status: int, err: str, body: bytes, latency_us: int, measured: bool) -> str:
        if status and 200 <= status < 300:
            key = str(status)
        elif status:
            code = ""
            if body[:1] == b"{":
                with contextlib.suppress(Exception):
                    code = _dec.decode(body).get("code", "")
            key = f"{status} {code}".strip()
        else:
            key = err
        if measured:
            h = self.hist.get(kind)
            if h is None:
                h = self.hist[kind] = new_histogram()
            h.record_value(max(1, min(latency_us, HIGHEST_US)))
            c = self.codes.setdefault(kind, {})
            c[key] = c.get(key, 0) + 1
            if not (status and 200 <= status < 300):
                expected = status and (kind, status, key.split(" ", 1)[-1]) in scenarios.EXPECTED
                bucket = self.refused if expected else self.errors
                bucket[f"{kind} {key}"] = bucket.get(f"{kind} {key}", 0) + 1
        return key

    def export(self) -> dict[str, Any]:
        return {
            "hist": {k: h.encode() for k, h in self.hist.items()},
            "gen_lag": self.gen_lag.encode(),
            "codes": self.codes,
            "errors": self.errors,
            "refused": self.refused,
            "sent": self.sent,
            "in_window": self.in_window,
            "done_in_window": self.done_in_window,
            "late_queued": self.late_queued,
            "late_generator": self.late_generator,
            "reconnects": self.reconnects,
            "connect_errors": self.connect_errors,
            "not_answered": self.not_answered,
        }


class Generator:
    """One process's share of one step."""

    KEEPALIVE_GUARD = 4.0  # uvicorn closes idle keep-alive connections after 5 s

    def __init__(self, host: str, port: int, data: Dataset, token: str | None, step: Step, index: int, procs: int):
        self.host, self.port, self.step = host, port, step
        self.procs, self.index = procs, index
        self.scenario = scenarios.make(step.scenario, data, token, step.seed * 1000 + index)
        self.out = Outcome()
        self.idle: deque[Connection] = deque()
        self.waiting: deque[tuple[scenarios.Req, float]] = deque()
        self.inflight = 0
        self.conns: set[Connection] = set()
        self.tasks: set[asyncio.Future[None]] = set()
        self.loop = asyncio.get_running_loop()

    async def open(self, n: int) -> None:
        for first in range(0, n, 200):
            got = await asyncio.gather(
                *(connect(self.host, self.port) for _ in range(min(200, n - first))), return_exceptions=True
            )
            for c in got:
                if isinstance(c, Connection):
                    self.idle.append(c)
                    self.conns.add(c)
                else:
                    self.out.connect_errors += 1

    async def run(self) -> dict[str, Any]:
        st = self.step
        await self.open(max(1, st.connections // self.procs + (1 if self.index < st.connections % self.procs else 0)))
        interval = self.procs / st.rate
        # the loop clock at st.start_at, then this process's offset inside the global schedule
        t0 = self.loop.time() + (st.start_at - time.time()) + self.index / st.rate
        self.window = (t0 + st.warmup, t0 + st.warmup + st.duration)
        end = self.window[1]
        reaper = asyncio.ensure_future(self.reap())
        gc.disable()  # a full collection in the middle of the schedule would show up as generator lag
        cpu0 = time.process_time()
        i = 0
        nxt = t0
        while nxt < end:
            now = self.loop.time()
            while nxt <= now and nxt < end:
                self.fire(nxt, now)
                i += 1
                nxt = t0 + i * interval
            # libuv timers tick in milliseconds: sleep at least one, then send everything that fell due
            await asyncio.sleep(max(0.001, nxt - self.loop.time()))
        cpu_sched = time.process_time() - cpu0
        deadline = self.loop.time() + st.drain
        while (self.inflight or self.waiting) and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.out.not_answered = self.inflight + len(self.waiting)
        await self.wind_down(self.loop.time() + st.drain)
        reaper.cancel()
        gc.enable()
        for c in self.conns:
            c.close()
        res = self.out.export()
        res["cpu_s"] = cpu_sched
        res["wall_s"] = end - t0
        res["booked"] = self.scenario.booked
        res["cancelled"] = self.scenario.cancelled
        return res

    async def wind_down(self, deadline: float) -> None:
        """Send, unmeasured, what frees the holds this step's flows still own (scenarios.Scenario.wind_down)."""
        self.scenario.wind_down()
        follow = self.scenario.follow
        while (follow or self.inflight) and self.loop.time() < deadline:
            while follow and self.idle:
                self.dispatch(self.idle.popleft(), follow.popleft(), self.window[1])
            await asyncio.sleep(0.01)

    def fire(self, sched: float, now: float) -> None:
        req = self.scenario.next()
        self.out.sent += 1
        if self.window[0] <= sched < self.window[1]:
            self.out.in_window += 1
        if self.idle:
            lag = now - sched
            if sched >= self.window[0]:
                self.out.gen_lag.record_value(max(1, int(lag * 1e6)))
                if lag * 1000 > self.step.late_ms:
                    self.out.late_generator += 1
            self.dispatch(self.idle.popleft(), req, sched)
        else:
            self.waiting.append((req, sched))

    def dispatch(self, conn: Connection, req: scenarios.Req, sched: float) -> None:
        now = self.loop.time()
        if conn.closed or (conn.uses and now - conn.last_used > self.KEEPALIVE_GUARD):
            conn.close()
            self.inflight += 1
            task = asyncio.ensure_future(self.reconnect_and_send(req, sched))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        self.inflight += 1
        out, window = self.out, self.window

        def done(status: int, body: bytes, err: str) -> None:
            t = self.loop.time()
            self.inflight -= 1
            measured = window[0] <= sched < window[1]
            out.record(req.kind, status, err, body, int((t - sched) * 1e6), measured)
            if window[0] <= t < window[1]:
                out.done_in_window += 1
            if status:
                try:
                    self.scenario.answer(req, status, body)
                except Exception:  # noqa: BLE001 - a malformed answer must not stop the schedule
                    out.errors["answer unreadable"] = out.errors.get("answer unreadable", 0) + 1
            conn.last_used = t
            self.release(conn)

        conn.send(req.raw, done, now)

    async def reconnect_and_send(self, req: scenarios.Req, sched: float) -> None:
        self.out.reconnects += 1
        try:
            conn = await connect(self.host, self.port)
        except OSError:
            self.inflight -= 1
            self.out.connect_errors += 1
            self.out.record(
                req.kind,
                0,
                "connect_error",
                b"",
                int((self.loop.time() - sched) * 1e6),
                self.window[0] <= sched < self.window[1],
            )
            return
        self.inflight -= 1
        self.conns.add(conn)
        self.dispatch(conn, req, sched)

    def release(self, conn: Connection) -> None:
        if self.waiting:
            req, sched = self.waiting.popleft()
            if (self.loop.time() - sched) * 1000 > self.step.late_ms and sched >= self.window[0]:
                self.out.late_queued += 1
            self.dispatch(conn, req, sched)
        else:
            self.idle.append(conn)

    async def reap(self) -> None:
        """Time out requests that got no answer within `timeout` (their connection is replaced)."""
        while True:
            await asyncio.sleep(0.5)
            now = self.loop.time()
            self.conns = {c for c in self.conns if not c.closed}
            for c in [c for c in self.conns if c.busy and now - c.sent_at > self.step.timeout]:
                c.time_out()


# ------------------------------------------------------------------ processes
def _worker(conn: Any, host: str, port: int, data_raw: bytes, token: str | None, index: int, procs: int) -> None:
    import uvloop

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    data = msgspec.msgpack.decode(data_raw, type=Dataset)
    while True:
        msg = conn.recv()
        if msg is None:
            return
        step = msgspec.msgpack.decode(msg, type=Step)
        try:
            res = uvloop.run(_run_one(host, port, data, token, step, index, procs))
        except Exception as exc:  # noqa: BLE001 - report to the parent instead of dying silently
            res = {"failed": f"{exc.__class__.__name__}: {exc}"}
        conn.send(res)


async def _run_one(host: str, port: int, data: Dataset, token: str | None, step: Step, index: int, procs: int) -> Any:
    return await Generator(host, port, data, token, step, index, procs).run()


class GeneratorPool:
    """`procs` long-lived generator processes, each driving its share of every step."""

    def __init__(self, base_url: str, data: Dataset, token: str | None, procs: int) -> None:
        hostport = base_url.split("://", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        ctx = mp.get_context("spawn")
        raw = msgspec.msgpack.encode(data)
        self.pipes = []
        self.procs = []
        for i in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child, host, int(port), raw, token, i, procs), daemon=True)
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    def run(self, step: Step) -> list[dict[str, Any]]:
        msg = msgspec.msgpack.encode(step)
        for pipe in self.pipes:
            pipe.send(msg)
        return [pipe.recv() for pipe in self.pipes]

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(2)
