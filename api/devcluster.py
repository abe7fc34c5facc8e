"""A local Redis Cluster for developers and tests (`booking dev-cluster`, tests marked `cluster`).

Six `redis-server` processes on loopback ports (3 primaries, 3 replicas), `--cluster-enabled yes`,
`cluster-node-timeout 2000`, `cluster-require-full-coverage no` (the shards that are up keep serving
while one has no primary), AOF with `appendfsync always`, each in its own folder of one temporary folder.
All six run in one process group of their own; they are stopped by process id (never by name), and the folder
is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

NODES = 6
REPLICAS = 1
NODE_TIMEOUT_MS = 2000


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(start: int = 21000, stop: int = 29000, nodes: int = NODES) -> int:
    """A base port such that base..base+nodes-1 and their cluster bus ports (+10000) are free."""
    for base in range(start, stop, nodes + 1):
        ports = range(base, base + nodes)
        if all(_port_free(p) and _port_free(p + 10000) for p in ports):
            return base
    raise RuntimeError(f"no {nodes} free ports (and bus ports) between {start} and {stop}")


def _cli(port: int, *args: str, timeout: float = 10) -> str:
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    ).stdout


class DevCluster:
    """Start with ``start()`` (or as a context manager), stop with ``stop()``; ``url`` is the REDIS_URL to use
    with REDIS_CLUSTER=1."""

    def __init__(self, base_port: int | None = None, folder: str | None = None, nodes: int = NODES) -> None:
        self.base_port = base_port if base_port is not None else free_base_port(nodes=nodes)
        self.ports = [self.base_port + i for i in range(nodes)]
        self._own_folder = folder is None
        self.folder = folder or tempfile.mkdtemp(prefix="booking-cluster-")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return ",".join(f"redis://127.0.0.1:{p}" for p in self.ports)

    def _group(self) -> int:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    return os.getpgid(p.pid)
        return 0  # none is running: a group of its own

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        d = os.path.join(self.folder, str(port))
        os.makedirs(d, exist_ok=True)
        group = self._group()  # one process group: the first node's (a node restarted joins the live ones')
        return subprocess.Popen(
            [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", d,
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--logfile", "redis.log",
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            process_group=group,
        )  # fmt: skip

    def start(self, timeout: float = 30.0) -> DevCluster:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("the local cluster needs redis-server and redis-cli (apt-get install redis-server)")
        try:
            for port in self.ports:
                self.procs.append(self._spawn(port))
            deadline = time.monotonic() + timeout
            for port in self.ports:
                while _cli(port, "ping").strip() != "PONG":
                    self._check_alive()
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server on port {port} did not answer")
                    time.sleep(0.05)
            created = subprocess.run(
                ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", str(REPLICAS), "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}{created.stderr}")
            self.wait_healthy(deadline - time.monotonic())
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"a redis-server of the local cluster exited ({p.returncode}); see {self.folder}")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every node says the cluster is ok and every replica's link to its primary is up."""
        deadline = time.monotonic() + max(timeout, 1.0)
        while True:
            self._check_alive()
            states = [_cli(p, "cluster", "info") for p in self.ports]
            repl = [_cli(p, "info", "replication") for p in self.ports]
            ok = all("cluster_state:ok" in s for s in states)
            links = all("role:master" in r or "master_link_status:up" in r for r in repl)
            replicas = sum("role:slave" in r for r in repl)
            if ok and links and replicas == len(self.ports) // (REPLICAS + 1) * REPLICAS:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the local cluster did not become healthy: " + " | ".join(states))
            time.sleep(0.1)

    def primaries(self) -> list[int]:
        return [p for p in self.ports if "role:master" in _cli(p, "info", "replication")]

    def replicas_of(self, primary_port: int) -> list[subprocess.Popen[bytes]]:
        """The processes of the replicas of the primary on ``primary_port``."""
        return [
            proc
            for port, proc in zip(self.ports, self.procs)
            if f"master_port:{primary_port}\r" in _cli(port, "info", "replication").replace("\n", "\r\n")
        ]

    def proc_of(self, port: int) -> subprocess.Popen[bytes]:
        return self.procs[self.ports.index(port)]

    def node_id(self, port: int) -> str:
        return _cli(port, "cluster", "myid").strip()

    def role(self, port: int) -> str:
        """'master', 'slave', or '' when the node does not answer."""
        for line in _cli(port, "role").splitlines():
            return line.strip()
        return ""

    def kill9(self, port: int) -> None:
        """`kill -9` of one node (a fault test's crash); ``restart`` brings it back with the same folder."""
        proc = self.proc_of(port)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def restart(self, port: int, timeout: float = 30.0) -> None:
        """Start a stopped node again on its folder (its nodes.conf and AOF): it rejoins the cluster."""
        i = self.ports.index(port)
        assert self.procs[i].poll() is not None, f"the node on {port} is still running"
        self.procs[i] = self._spawn(port)
        deadline = time.monotonic() + timeout
        while _cli(port, "ping").strip() != "PONG":
            if self.procs[i].poll() is not None:  # this node only: others may be down on purpose (a fault test)
                raise RuntimeError(f"redis-server on port {port} exited after a restart; see {self.folder}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not answer after a restart")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate every node by its process id (SIGTERM, then SIGKILL), then remove the folder."""
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        self.procs.clear()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(base_port: int | None = None) -> Iterator[DevCluster]:
    cluster = DevCluster(base_port)
    with cluster:
        yield cluster
