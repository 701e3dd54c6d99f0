"""The Docker image, checked without a Docker engine.

The Dockerfile must lint clean with hadolint, and the command it declares (CMD, ENV, VOLUME,
HEALTHCHECK) must serve the contract when run exactly as written, with only the /data volume
mapped onto a temporary directory.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from support import installed_script, stop_process, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_PORT = 8000
T = TypeVar("T")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comment lines dropped (as Docker does)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, arguments = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def only(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.keyword == keyword]


def env_of(instructions: list[Instruction]) -> dict[str, str]:
    """Every `ENV KEY=VALUE ...` pair, later ones winning (the legacy `ENV KEY VALUE` form too)."""
    env: dict[str, str] = {}
    for instruction in only(instructions, "ENV"):
        words = shlex.split(instruction.arguments)
        if len(words) >= 2 and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def exec_form(arguments: str, what: str) -> list[str]:
    """A JSON-array (exec form) command; the shell form would need /bin/sh and signal forwarding."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        pytest.fail(f"{what} must use the JSON exec form, got: {arguments}")
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), arguments
    return argv


def healthcheck_of(instructions: list[Instruction]) -> tuple[dict[str, str], list[str]]:
    (healthcheck,) = only(instructions, "HEALTHCHECK")
    options, _, command = healthcheck.arguments.partition("CMD")
    flags = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
    return flags, exec_form(command.strip(), "HEALTHCHECK CMD")


def seconds(duration: str) -> float:
    """Docker durations as used in HEALTHCHECK options: 30s, 1m, 1m30s, 500ms."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"bad duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    return parse_dockerfile(DOCKERFILE.read_text())


def hadolint_binary() -> str:
    return installed_script("hadolint")


# --- static checks -------------------------------------------------------------------------


def test_dockerfile_passes_hadolint_with_no_findings(tmp_path: Path) -> None:
    # Run outside the repository with an empty home so no .hadolint.yaml can silence a rule:
    # the only way to ignore one is an inline, justified pragma (checked below).
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    result = subprocess.run(
        [hadolint_binary(), "--no-color", str(DOCKERFILE)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_every_ignored_hadolint_rule_is_justified_in_a_comment_above_it() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"\s*#\s*hadolint\s+ignore=", line):
            above = lines[index - 1].strip() if index else ""
            assert above.startswith("#") and "hadolint" not in above and len(above) > 10, (
                f"line {index + 1}: `{line.strip()}` needs a comment above it saying why"
            )


def test_image_starts_from_python_3_11_slim(instructions: list[Instruction]) -> None:
    assert instructions[0].keyword == "FROM"
    assert instructions[0].arguments.split()[0] == "python:3.11-slim"


def test_image_installs_the_project_with_the_server_extra(instructions: list[Instruction]) -> None:
    copied = " ".join(i.arguments for i in only(instructions, "COPY")).split()
    for source in ("pyproject.toml", "README.md", "service/", "client/"):
        assert source in copied, f"the Dockerfile does not COPY {source}"
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, missing from the repository"
    installs = [i.arguments for i in only(instructions, "RUN") if "pip install" in i.arguments]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    assert "--no-cache-dir" in words
    assert any(re.fullmatch(r"\./?\[server\]", w) for w in words), words


def test_image_runs_as_a_non_root_user_who_owns_the_data_volume(
    instructions: list[Instruction],
) -> None:
    users = only(instructions, "USER")
    assert users, "the image has no USER instruction, so it runs as root"
    user, _, group = users[-1].arguments.partition(":")
    assert user not in {"root", "0"} and group not in {"root", "0"}, users[-1]
    assert users[-1].line < only(instructions, "CMD")[-1].line
    chowns = [
        m.group(1)
        for i in only(instructions, "RUN")
        for m in re.finditer(r"chown\s+(?:-\S+\s+)*(\S+)\s+/data\b", i.arguments)
    ]
    assert chowns and chowns[-1].partition(":")[0] == user, f"/data is owned by {chowns}, not {user}"


def test_database_lives_on_the_data_volume(instructions: list[Instruction]) -> None:
    volumes = [v for i in only(instructions, "VOLUME") for v in volume_paths(i.arguments)]
    assert volumes == ["/data"]
    assert env_of(instructions).get("LRSERVE_DATABASE_URL") == "sqlite:////data/lrserve.db"


def test_image_exposes_port_8000_and_serves_on_all_interfaces(
    instructions: list[Instruction],
) -> None:
    assert [i.arguments for i in only(instructions, "EXPOSE")] == [str(IMAGE_PORT)]
    (cmd,) = only(instructions, "CMD")
    assert exec_form(cmd.arguments, "CMD") == [
        "lrserve", "serve", "--host", "0.0.0.0", "--port", str(IMAGE_PORT),
    ]


def test_healthcheck_probes_healthz_without_curl(instructions: list[Instruction]) -> None:
    flags, argv = healthcheck_of(instructions)
    assert argv[0] in {"python", "python3"}, "python:3.11-slim has no curl or wget"
    assert f"127.0.0.1:{IMAGE_PORT}/healthz" in " ".join(argv)
    assert seconds(flags.get("timeout", "30s")) <= 10


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    entries = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".venv", ".git", "tests", "bench", "*.db"):
        assert pattern in entries, f".dockerignore does not exclude {pattern}"
    for needed in ("pyproject.toml", "README.md", "service", "client"):
        assert needed not in entries, f".dockerignore excludes {needed}, which the build copies"


def volume_paths(arguments: str) -> list[str]:
    if arguments.startswith("["):
        return json.loads(arguments)
    return arguments.split()


# --- the declared command, run as the container would ---------------------------------------


def container_env(instructions: list[Instruction], volume: Path) -> dict[str, str]:
    """The process environment of the container: ours, minus any LRSERVE_* setting, plus the
    image's ENV with the /data volume mapped onto `volume`, and the interpreter's bin first on
    PATH (where the image has `lrserve` and `python`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRSERVE_")}
    image_env = env_of(instructions)
    url = image_env["LRSERVE_DATABASE_URL"]
    assert url.startswith("sqlite:////data/"), url
    image_env["LRSERVE_DATABASE_URL"] = "sqlite:///" + str(volume / url.removeprefix("sqlite:////data/"))
    env.update(image_env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class OwnNetwork:
    """A network namespace of its own (a loopback device and nothing else), as a container has.

    The image's CMD hard-codes port 8000; run inside, it never meets the port 8000 of this machine (a
    developer's `make serve`). Programs are started in it with `nsenter`; `call` runs a function on a
    thread that has entered it (a network namespace is per thread), so its sockets live there too.
    """

    def __init__(self) -> None:
        self._holder = subprocess.Popen(
            ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 3600"],
            stdout=subprocess.PIPE, text=True,
        )
        assert self._holder.stdout is not None and self._holder.stdout.readline().strip() == "up", \
            "cannot make a network namespace (needs root, unshare and ip)"
        self.path = f"/proc/{self._holder.pid}/ns/net"

    def argv(self, command: list[str]) -> list[str]:
        return ["nsenter", f"--net={self.path}", "--", *command]

    def call(self, fn: Callable[[], T]) -> T:
        def inside() -> T:
            descriptor = os.open(self.path, os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(descriptor, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(descriptor)
            return fn()

        with ThreadPoolExecutor(1) as pool:  # the thread, and so the namespace, ends with the call
            return pool.submit(inside).result()

    def close(self) -> None:
        self._holder.kill()
        self._holder.wait()


def wait_for_healthz(url: str, process: subprocess.Popen, log: Path) -> None:
    try:
        wait_until_healthy(url, process)
    except RuntimeError as error:
        pytest.fail(f"the image CMD did not serve /healthz: {error}\n{log.read_text()}")


def run_healthcheck(network: OwnNetwork, argv: list[str], env: dict[str, str], timeout: float) -> int:
    return subprocess.run(network.argv(argv), env=env, capture_output=True, timeout=timeout + 5).returncode


def test_image_command_serves_the_api_and_passes_its_own_healthcheck(
    instructions: list[Instruction], tmp_path: Path
) -> None:
    network = OwnNetwork()  # port 8000 in there is free, whatever runs on this machine
    volume, workdir = tmp_path / "data", tmp_path / "app"
    volume.mkdir()
    workdir.mkdir()
    env = container_env(instructions, volume)
    (cmd,) = only(instructions, "CMD")
    argv = exec_form(cmd.arguments, "CMD")
    if shutil.which(argv[0], path=env["PATH"]) is None:
        pytest.fail(f"{argv[0]!r} is not installed next to {sys.executable} or on PATH")
    flags, probe = healthcheck_of(instructions)
    probe_timeout = seconds(flags.get("timeout", "30s"))

    try:
        assert run_healthcheck(network, probe, env, probe_timeout) != 0, "the healthcheck passes with no server"

        log = tmp_path / "server.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(network.argv(argv), env=env, cwd=workdir, stdout=sink,
                                       stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{IMAGE_PORT}"
        try:
            network.call(lambda: wait_for_healthz(url, process, log))

            def smoke() -> None:
                with httpx.Client(base_url=url, timeout=10.0) as api:
                    assert api.get("/healthz").json()["status"] == "ok"
                    created = api.put("/runs/image-smoke",
                                      json={"schedule": {"type": "constant", "learning_rate": 0.01}})
                    assert created.status_code == 201, created.text
                    assert api.get("/runs/image-smoke/lr", params={"step": 3}).json() == {
                        "run_id": "image-smoke", "step": 3, "lr": 0.01,
                    }
                # --host 0.0.0.0: reachable on another local address too, as a published port needs.
                assert httpx.get(f"http://127.0.0.2:{IMAGE_PORT}/healthz", timeout=5).status_code == 200

            network.call(smoke)
            assert (volume / "lrserve.db").is_file(), "the database is not on the /data volume"
            assert not list(workdir.iterdir()), f"the server wrote into its working directory: {list(workdir.iterdir())}"
            assert run_healthcheck(network, probe, env, probe_timeout) == 0, log.read_text()
        finally:
            stop_process(process)
        assert run_healthcheck(network, probe, env, probe_timeout) != 0, "the healthcheck passes after it stopped"
    finally:
        network.close()
