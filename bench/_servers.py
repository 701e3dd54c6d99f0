"""Start and stop the servers a benchmark compares; every one listens on 127.0.0.1 only."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from _databases import database

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"

# What `lrserve serve` passes to uvicorn.run besides the app, host, port and workers (service/lrserve/cli.py);
# the bare app runs under exactly these, so the ratio measures lrserve's own work.
UVICORN_OPTIONS: dict[str, object] = {"access_log": False, "log_level": "info", "timeout_graceful_shutdown": 10,
                                       "timeout_keep_alive": 75}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (the kernel may hand the same one out twice once it is closed)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def request_json(port: int, method: str, path: str, body: object = None) -> tuple[int, object]:
    """One request on a fresh connection; for setup, not for measuring."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {} if payload is None else {"Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if data else None)
    finally:
        connection.close()


def metric_samples(port: int, name: str) -> dict[str, float]:
    """The samples of one metric in the server's Prometheus `/metrics`, keyed by their labels' text
    (e.g. `{'{result="hit"}': 1234.0}`; `''` for a sample without labels)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"GET /metrics answered {response.status}: {text[:200]}")
    finally:
        connection.close()
    samples = {}
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in {"{", " "}:
            series, _, value = line.rpartition(" ")
            samples[series[len(name):]] = float(value)
    return samples


@dataclass(frozen=True)
class Server:
    """A server process the benchmark started: where it listens, and its pid (for /proc readings)."""

    port: int
    pid: int

    def rss_bytes(self) -> int:
        """Resident set size now (VmRSS of /proc/PID/status)."""
        return self._status_bytes("VmRSS")

    def peak_bytes(self) -> int:
        """The highest resident set size since the process started (VmHWM of /proc/PID/status)."""
        return self._status_bytes("VmHWM")

    def _status_bytes(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process (all its threads) has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _serving(
    commands: list[tuple[list[str], int]], name: str, pythonpath: str | None = None
) -> Iterator[list[Server]]:
    """Start every (command, port) at once, yield them once all answer /healthz, stop them all on exit.

    `pythonpath` replaces the caller's PYTHONPATH in the servers' environment (to serve another checkout).
    """
    # No LRSERVE_* from the caller's shell (e.g. LRSERVE_ACCESS_LOG): all servers run on defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRSERVE_")}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    with ExitStack() as stack:
        started: list[tuple[subprocess.Popen[bytes], int, IO[bytes]]] = []
        for command, port in commands:
            log = stack.enter_context(tempfile.TemporaryFile())
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH, env=env)
            stack.callback(_stop, process)
            started.append((process, port, log))
        deadline = time.monotonic() + 60
        for process, port, log in started:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{name} did not start:\n{log.read().decode(errors='replace')}")
                try:
                    if request_json(port, "GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.05)
        yield [Server(port, process.pid) for process, port, _ in started]


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def lrserve_processes(
    database_url: str, count: int = 1, pythonpath: str | None = None
) -> Iterator[list[Server]]:
    """`count` separate `python -m lrserve serve` processes on free ports, all on `database_url`.

    `pythonpath` replaces the caller's PYTHONPATH in the servers' environment, to serve another
    checkout of the code (e.g. an older commit's `service:client`).
    """
    commands = [([sys.executable, "-m", "lrserve", "serve", "--host", HOST, "--port", str(port),
                  "--database", database_url], port) for port in free_ports(count)]
    with _serving(commands, "lrserve", pythonpath) as servers:
        yield servers


@contextmanager
def lrserve_server(pythonpath: str | None = None) -> Iterator[Server]:
    """One `python -m lrserve serve` on a free port with a temporary SQLite file.

    `pythonpath` replaces the caller's PYTHONPATH in the server's environment, to serve another
    checkout of the code (e.g. an older commit's `service:client`).
    """
    with database("sqlite") as url, lrserve_processes(url, 1, pythonpath) as (server,):
        yield server


@contextmanager
def bare_apps(count: int = 1) -> Iterator[list[Server]]:
    """`count` processes of the bare FastAPI baseline (bench/_bare_app.py) on free ports."""
    commands = [([sys.executable, str(BENCH / "_bare_app.py"), "--host", HOST, "--port", str(port)], port)
                for port in free_ports(count)]
    with _serving(commands, "the bare app") as servers:
        yield servers


@contextmanager
def lrserve() -> Iterator[int]:
    """The real service (`python -m lrserve serve`) on a free port with a temporary SQLite file."""
    with lrserve_server() as server:
        yield server.port


@contextmanager
def bare_app() -> Iterator[int]:
    """The bare FastAPI baseline (bench/_bare_app.py) on a free port."""
    with bare_apps() as (server,):
        yield server.port
