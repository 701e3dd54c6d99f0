"""Every way of starting the service reads the same settings; `--workers N`; shutdown with a deadline.

Real processes only: `lrserve serve` (flags, environment, several workers) and
`uvicorn --factory lrserve.api:create_app`, each in an empty working directory, each stopped with
a real signal.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import free_port, installed_script, running_server, stop_process, wait_until_healthy

from lrserve import __version__

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONSTANT = {"schedule": {"type": "constant", "learning_rate": 0.1}}


def clean_env(**overrides: str) -> dict[str, str]:
    """Our environment without any LRSERVE_* setting that could leak into the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRSERVE_")}
    env.update(overrides)
    return env


@dataclass(frozen=True)
class Started:
    process: subprocess.Popen
    url: str
    port: int
    log: Path


@contextmanager
def started(argv: list[str], env: dict[str, str], tmp_path: Path, port: int) -> Iterator[Started]:
    """Run `argv` in the empty directory tmp_path/cwd with exactly `env` (plus PATH/HOME), until healthy."""
    cwd, log = tmp_path / "cwd", tmp_path / f"server-{port}.log"
    cwd.mkdir(exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, env=clean_env(**env), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_healthy(url, process)
        except RuntimeError as error:
            pytest.fail(f"{error}\n{log.read_text()}")
        yield Started(process, url, port, log)
    finally:
        stop_process(process)


def lrserve() -> str:
    return installed_script("lrserve")


# --- the process tree, from /proc -----------------------------------------------------------


def listening_socket(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:port (or any address) in /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
            return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def holds_socket(pid: int, inode: str) -> bool:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == f"socket:[{inode}]":
                return True
        except OSError:
            continue
    return False


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                after_name = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(after_name[1]) == pid:
                found.append(int(entry.name))
    return found


def children_serving(server: Started) -> list[int]:
    """The child processes that accept connections on the server's listening socket."""
    inode = listening_socket(server.port)
    return [child for child in children_of(server.process.pid) if holds_socket(child, inode)]


def wait_for_children_serving(server: Started, count: int, timeout: float = 30.0) -> list[int]:
    """Worker processes join the socket one by one: poll until `count` do, or fail with what was seen."""
    deadline = time.monotonic() + timeout
    serving = children_serving(server)
    while len(serving) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        serving = children_serving(server)
    return serving


def database_mentions(path: Path, text: str) -> bool:
    """Whether any row of any table of the SQLite file holds `text` (whatever the schema)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return any(text in str(value) for table in tables
                   for row in db.execute(f'SELECT * FROM "{table}"') for value in row)


# --- every start path: same token, same database -------------------------------------------


@dataclass(frozen=True)
class StartPath:
    command: Callable[[int, str], list[str]]
    """(port, database URL) -> argv"""
    env: Callable[[int, str], dict[str, str]]
    workers: int
    startup_line: bool = True
    """`lrserve serve` logs one; uvicorn itself knows nothing of it."""


def env_only(port: int, database: str) -> dict[str, str]:
    return {"LRSERVE_PORT": str(port), "LRSERVE_DATABASE_URL": database, "LRSERVE_TOKEN": TOKEN}


START_PATHS = {
    "lrserve-serve-env-only": StartPath(lambda port, db: [lrserve(), "serve"], env_only, workers=1),
    "lrserve-serve-flags-over-env": StartPath(
        lambda port, db: [lrserve(), "serve", "--port", str(port), "--database", db, "--workers", "1"],
        lambda port, db: {"LRSERVE_PORT": str(free_port()), "LRSERVE_DATABASE_URL": db.replace("runs.db", "env.db"),
                          "LRSERVE_WORKERS": "2", "LRSERVE_TOKEN": TOKEN},
        workers=1),
    "lrserve-serve-workers-flag": StartPath(
        lambda port, db: [lrserve(), "serve", "--workers", "2"], env_only, workers=2),
    "lrserve-serve-workers-env": StartPath(
        lambda port, db: [lrserve(), "serve"], lambda port, db: {**env_only(port, db), "LRSERVE_WORKERS": "2"},
        workers=2),
    "uvicorn-factory": StartPath(
        lambda port, db: [sys.executable, "-m", "uvicorn", "--factory", "lrserve.api:create_app",
                          "--host", "127.0.0.1", "--port", str(port)],
        lambda port, db: {"LRSERVE_DATABASE_URL": db, "LRSERVE_TOKEN": TOKEN}, workers=1, startup_line=False),
}


@pytest.mark.parametrize("path", START_PATHS.values(), ids=START_PATHS.keys())
def test_every_way_of_starting_enforces_the_token_and_writes_the_database_of_its_settings(
    path: StartPath, tmp_path: Path,
) -> None:
    port, data = free_port(), tmp_path / "data"
    data.mkdir()
    database = f"sqlite:///{data / 'runs.db'}"
    run_id = f"start-path-{port}"
    with started(path.command(port, database), path.env(port, database), tmp_path, port) as server:
        if path.workers > 1:
            serving = wait_for_children_serving(server, path.workers)
            assert len(serving) == path.workers, f"{len(serving)} worker processes hold the port"
        else:
            assert children_serving(server) == []
            assert holds_socket(server.process.pid, listening_socket(port))

        # Fresh connections, so that with several workers the requests land on each of them.
        assert httpx.put(f"{server.url}/runs/{run_id}", json=CONSTANT, timeout=10).status_code == 401
        assert httpx.put(f"{server.url}/runs/{run_id}", json=CONSTANT, headers=AUTH, timeout=10).status_code == 201
        for _ in range(12):
            assert httpx.get(f"{server.url}/runs/{run_id}", timeout=10).status_code == 401
            answer = httpx.get(f"{server.url}/runs/{run_id}", headers=AUTH, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["spec"]["schedule"] == CONSTANT["schedule"]

    if path.startup_line:
        workers = f"{path.workers} worker" + ("s" if path.workers > 1 else "")
        assert [line for line in server.log.read_text().splitlines() if line.startswith("lrserve ")] == [
            f"lrserve {__version__}: http://127.0.0.1:{port}, {workers}, database {database}, auth on (1 token), "
            f"shutdown timeout 10 s"
        ]
    assert database_mentions(data / "runs.db", run_id)
    assert not (data / "env.db").exists(), "the flag --database did not take precedence over the environment"
    assert not list((tmp_path / "cwd").iterdir()), "the server wrote into its working directory"


# --- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--workers", "0"], {}, "--workers"),
        (["--workers", "x"], {}, "--workers"),
        ([], {"LRSERVE_WORKERS": "two"}, "LRSERVE_WORKERS"),
        ([], {"LRSERVE_PORT": "abc"}, "LRSERVE_PORT"),
        (["--port", "70000"], {}, "--port"),
        (["--shutdown-timeout", "-1"], {}, "--shutdown-timeout"),
        ([], {"LRSERVE_SHUTDOWN_TIMEOUT": "soon"}, "LRSERVE_SHUTDOWN_TIMEOUT"),
    ],
    ids=["workers-0", "workers-x", "env-workers", "env-port", "port-range", "negative-timeout", "env-timeout"],
)
def test_a_bad_setting_exits_2_with_one_line_naming_the_flag_or_variable(
    args: list[str], env: dict[str, str], named: str, tmp_path: Path,
) -> None:
    result = subprocess.run([lrserve(), "serve", *args], env=clean_env(**env), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not list(tmp_path.iterdir()), "a refused start touched the database"


# --- graceful shutdown ----------------------------------------------------------------------


def report(client: httpx.Client, run: str, step: int) -> bool:
    """Whether the service acknowledged (200) this report."""
    try:
        answer = client.post(f"/runs/{run}/metrics", json={"step": step, "metrics": {"loss": 1.0 / (step + 1)}})
    except httpx.TransportError:
        return False
    return answer.status_code == 200


def test_sigterm_under_report_load_keeps_every_acknowledged_report_and_exits_0(tmp_path: Path) -> None:
    port, database = free_port(), f"sqlite:///{tmp_path / 'runs.db'}"
    writers, runs_per_writer, timeout = 4, 3, 5.0
    acknowledged: set[tuple[str, int]] = set()
    lock, enough = threading.Lock(), threading.Event()

    def write(url: str, runs: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            step = 0
            while True:
                for run in runs:
                    if not report(client, run, step):
                        return  # the service is going away: stop at the first report it did not take
                    with lock:
                        acknowledged.add((run, step))
                        if len(acknowledged) >= 150:
                            enough.set()
                step += 1

    argv = [lrserve(), "serve", "--shutdown-timeout", str(timeout)]
    with started(argv, {"LRSERVE_PORT": str(port), "LRSERVE_DATABASE_URL": database}, tmp_path, port) as server:
        runs = [[f"load-{w}-{r}" for r in range(runs_per_writer)] for w in range(writers)]
        for run in sum(runs, []):
            assert httpx.put(f"{server.url}/runs/{run}", json=CONSTANT).status_code == 201
        threads = [threading.Thread(target=write, args=(server.url, mine)) for mine in runs]
        for thread in threads:
            thread.start()
        assert enough.wait(30), "the writers got no 150 reports through"
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=timeout + 10)
        took = time.monotonic() - signalled
        for thread in threads:
            thread.join(timeout=30)

    assert code == 0, server.log.read_text()
    assert took < timeout + 2
    with running_server(database) as again, httpx.Client(base_url=again.url, timeout=10) as client:
        stored = {(run, each["step"]) for run in sum(runs, [])
                  for each in client.get(f"/runs/{run}/metrics").json()["reports"]}
    lost = acknowledged - stored
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged reports are gone, e.g. {sorted(lost)[:5]}"


@pytest.mark.parametrize(("workers", "sig"), [(1, signal.SIGTERM), (2, signal.SIGINT)],
                         ids=["1-worker-sigterm", "2-workers-sigint"])
def test_a_client_holding_half_a_body_delays_the_exit_only_until_the_shutdown_timeout(
    workers: int, sig: signal.Signals, tmp_path: Path,
) -> None:
    port, database = free_port(), f"sqlite:///{tmp_path / 'runs.db'}"
    argv = [lrserve(), "serve", "--shutdown-timeout", "2", "--workers", str(workers)]
    with started(argv, {"LRSERVE_PORT": str(port), "LRSERVE_DATABASE_URL": database}, tmp_path, port) as server, \
            socket.create_connection(("127.0.0.1", port), timeout=15) as idle, \
            socket.create_connection(("127.0.0.1", port), timeout=15) as stuck:
        # One idle keep-alive connection, after a complete exchange ...
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: lrserve\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200 ")
        # ... and one request whose body stops after 10 of its 1000 bytes.
        stuck.sendall(b"POST /runs/half/metrics HTTP/1.1\r\nHost: lrserve\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n" + b'{"step": 0')
        signalled = time.monotonic()
        server.process.send_signal(sig)
        code = server.process.wait(timeout=40)
        took = time.monotonic() - signalled
        answer = stuck.recv(4096)

    assert code == 0, server.log.read_text()
    assert took < 6, f"the process took {took:.1f} s to exit with a 2 s shutdown timeout"
    assert answer.startswith(b"HTTP/1.1 503 "), answer  # cut, never acknowledged
    assert b"shutting down" in answer


def test_with_several_workers_metrics_add_up_every_workers_requests(tmp_path: Path) -> None:
    """Whichever worker answers GET /metrics, it counts the requests all of them served."""
    port = free_port()
    argv = [lrserve(), "serve", "--port", str(port), "--workers", "2",
            "--database", f"sqlite:///{tmp_path / 'runs.db'}"]

    def healthz_count(url: str) -> float:
        text = httpx.get(f"{url}/metrics", timeout=10).text  # a fresh connection: any worker
        prefix = 'lrserve_http_requests_total{method="GET",route="/healthz",status="200"} '
        return float(next((row[len(prefix):] for row in text.splitlines() if row.startswith(prefix)), 0.0))

    with started(argv, {}, tmp_path, port) as server:
        assert len(wait_for_children_serving(server, 2)) == 2
        for _ in range(3):
            before = healthz_count(server.url)
            for _ in range(20):
                assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            assert healthz_count(server.url) - before == 20


def test_a_keep_alive_connection_idle_longer_than_clients_keep_theirs_is_still_served(server) -> None:
    """httpx (and lrclient) reuse a connection idle for up to 5 s: the service must not close it at 5 s, or a
    request sent at that moment is reset. One connection, two requests 6 s apart: both answered on it."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/healthz")
        first = connection.getresponse()
        assert first.status == 200 and first.read()
        opened = connection.sock
        time.sleep(6)  # the idle time under test (not a wait for something): longer than httpx's 5 s expiry
        connection.request("GET", "/healthz")  # http.client never reconnects an open socket on its own
        second = connection.getresponse()
        assert second.status == 200 and second.read()
        assert connection.sock is opened
    finally:
        connection.close()
