"""The `lrserve` console script: `preview` without a server, and `serve` with its flags and env."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from support import free_port, installed_script, stop_process, wait_until_healthy


def lrserve_script() -> str:
    return installed_script("lrserve")


def clean_env(**overrides: str) -> dict[str, str]:
    """Our environment without any LRSERVE_* setting that could leak into the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRSERVE_")}
    env.update(overrides)
    return env


def lrserve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lrserve_script(), *args], env=clean_env(), cwd=cwd, capture_output=True, text=True, timeout=60
    )


# --- preview ---------------------------------------------------------------------------------


def write_spec(directory: Path, spec: object, name: str = "spec.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(spec))
    return path


def preview(spec_file: Path, *args: str) -> list[tuple[int, float]]:
    """Run `lrserve preview` and parse its "step<TAB>lr" lines."""
    result = lrserve("preview", str(spec_file), *args)
    assert result.returncode == 0, result.stderr
    rows = []
    for line in result.stdout.splitlines():
        assert re.fullmatch(r"\d+\t[-+0-9.eE]+|\d+\t(?:inf|nan)", line), f"not a step<TAB>lr line: {line!r}"
        step, lr = line.split("\t")
        rows.append((int(step), float(lr)))
    return rows


def approx_rows(rows: list[tuple[int, float]]) -> list[tuple[int, object]]:
    return [(step, pytest.approx(lr, rel=1e-12, abs=0.0)) for step, lr in rows]


def test_preview_prints_a_piecewise_constant_schedule_keeping_the_earlier_value_at_boundaries(
    tmp_path: Path,
) -> None:
    spec = {"schedule": {"type": "piecewise_constant", "boundaries": [2, 4], "values": [1.0, 0.5, 0.25]}}
    assert preview(write_spec(tmp_path, spec), "--steps", "7") == approx_rows(
        [(0, 1.0), (1, 1.0), (2, 1.0), (3, 0.5), (4, 0.5), (5, 0.25), (6, 0.25)]
    )


def test_preview_prints_a_step_decay_halving_every_three_steps(tmp_path: Path) -> None:
    spec = {"schedule": {"type": "step_decay", "initial_learning_rate": 0.8, "step_size": 3, "gamma": 0.5}}
    assert preview(write_spec(tmp_path, spec), "--steps", "8") == approx_rows(
        [(0, 0.8), (1, 0.8), (2, 0.8), (3, 0.4), (4, 0.4), (5, 0.4), (6, 0.2), (7, 0.2)]
    )


def test_preview_every_k_prints_steps_0_k_2k_below_n(tmp_path: Path) -> None:
    spec = {"schedule": {"type": "step_decay", "initial_learning_rate": 0.8, "step_size": 3, "gamma": 0.5}}
    assert preview(write_spec(tmp_path, spec), "--steps", "10", "--every", "3") == approx_rows(
        [(0, 0.8), (3, 0.4), (6, 0.2), (9, 0.1)]
    )


def test_preview_of_a_multistep_decay_is_already_reduced_at_each_milestone(tmp_path: Path) -> None:
    spec = {"schedule": {"type": "multistep_decay", "initial_learning_rate": 1.0, "milestones": [2, 5]},
            "step_unit": "batch"}
    assert preview(write_spec(tmp_path, spec), "--steps", "6") == approx_rows(
        [(0, 1.0), (1, 1.0), (2, 0.1), (3, 0.1), (4, 0.1), (5, 0.01)]
    )


def test_preview_of_a_spec_with_a_plateau_shows_the_schedule_before_any_report(tmp_path: Path) -> None:
    spec = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 1.0, "decay_steps": 2,
                         "decay_rate": 0.5, "staircase": True},
            "plateau": {"monitor": "val_loss", "factor": 0.1, "patience": 0}}
    assert preview(write_spec(tmp_path, spec), "--steps", "5") == approx_rows(
        [(0, 1.0), (1, 1.0), (2, 0.5), (3, 0.5), (4, 0.25)]
    )


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1,
                       "decay_steps": -5, "decay_rate": 0.9}}, "decay_steps"),
        ({"schedule": {"type": "constant", "learning_rate": 0.1, "learnig_rate": 0.2}}, "learnig_rate"),
        ({"schedule": {"type": "constant", "learning_rate": 0.1},
          "plateau": {"monitor": "val_loss", "patiense": 3}}, "patiense"),
        ({"schedule": {"type": "piecewise_constant", "boundaries": [10, 20], "values": [1.0, 0.5]}},
         "values"),
    ],
    ids=["negative-decay-steps", "misspelt-schedule-field", "misspelt-plateau-field", "values-count"],
)
def test_preview_of_a_bad_spec_exits_2_naming_the_field(tmp_path: Path, spec: object, field: str) -> None:
    result = lrserve("preview", str(write_spec(tmp_path, spec)), "--steps", "3")
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert field in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_preview_of_a_missing_file_exits_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-spec.json"
    result = lrserve("preview", str(missing), "--steps", "3")
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "no-such-spec.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_preview_of_a_file_that_is_not_json_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schedule": {"type": "constant",')
    result = lrserve("preview", str(path), "--steps", "3")
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "broken.json" in result.stderr or "JSON" in result.stderr
    assert "Traceback" not in result.stderr


# --- help ------------------------------------------------------------------------------------


def test_help_lists_the_serve_and_preview_commands() -> None:
    result = lrserve("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "preview" in result.stdout


def test_python_dash_m_lrserve_is_the_same_program() -> None:
    result = subprocess.run([sys.executable, "-m", "lrserve", "--help"], env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "serve" in result.stdout and "preview" in result.stdout


def test_serve_help_lists_host_port_and_database() -> None:
    result = lrserve("serve", "--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--database"):
        assert flag in result.stdout


# --- serve -----------------------------------------------------------------------------------


@contextmanager
def serving(args: list[str], env: Mapping[str, str], cwd: Path, url: str) -> Iterator[None]:
    """Run `lrserve serve ARGS` with exactly `env` (plus PATH/HOME), until it answers at `url`."""
    log = cwd / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([lrserve_script(), "serve", *args], env=clean_env(**env), cwd=cwd,
                                   stdout=sink, stderr=subprocess.STDOUT)
    try:
        try:
            wait_until_healthy(url, process)
        except RuntimeError as error:
            pytest.fail(f"{error}\n{log.read_text()}")
        yield
    finally:
        stop_process(process)


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2.0)
    except httpx.ConnectError:
        return True
    return False


def create_a_run(url: str) -> None:
    """Touch the storage, so the database file must exist afterwards whatever the store's laziness."""
    response = httpx.put(f"{url}/runs/cli-check", json={"schedule": {"type": "constant", "learning_rate": 0.1}},
                         timeout=10)
    assert response.status_code == 201, response.text


def test_serve_honours_the_port_and_database_flags(tmp_path: Path) -> None:
    port, database = free_port(), tmp_path / "data" / "flags.db"
    database.parent.mkdir()
    url = f"http://127.0.0.1:{port}"
    with serving(["--port", str(port), "--database", f"sqlite:///{database}"], {}, tmp_path, url):
        create_a_run(url)
        assert database.is_file()
    assert not (tmp_path / "lrserve.db").exists()


def test_serve_honours_host_port_and_database_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {"LRSERVE_HOST": "127.0.0.2", "LRSERVE_PORT": str(port),
           "LRSERVE_DATABASE_URL": "sqlite:///from-env.db"}  # relative: under the working directory
    url = f"http://127.0.0.2:{port}"
    with serving([], env, tmp_path, url):
        create_a_run(url)
        assert refuses_connections(f"http://127.0.0.1:{port}"), "bound to more than LRSERVE_HOST"
        assert (tmp_path / "from-env.db").is_file()
    assert not (tmp_path / "lrserve.db").exists()


def test_serve_defaults_to_loopback_only_and_lrserve_db_in_the_working_directory(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving([], {"LRSERVE_PORT": str(port)}, tmp_path, url):
        create_a_run(url)
        assert refuses_connections(f"http://127.0.0.2:{port}"), "the default host is not 127.0.0.1"
        assert (tmp_path / "lrserve.db").is_file()


def test_serve_flags_take_precedence_over_the_environment(tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    while flag_port == env_port:
        flag_port = free_port()
    env = {"LRSERVE_PORT": str(env_port), "LRSERVE_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}",
           "LRSERVE_HOST": "127.0.0.2"}
    url = f"http://127.0.0.1:{flag_port}"
    args = ["--host", "127.0.0.1", "--port", str(flag_port), "--database", f"sqlite:///{tmp_path / 'flag.db'}"]
    with serving(args, env, tmp_path, url):
        create_a_run(url)
        assert refuses_connections(f"http://127.0.0.2:{env_port}")
        assert (tmp_path / "flag.db").is_file()
        assert not (tmp_path / "env.db").exists()


# --- mistakes get one line that says how to fix them ------------------------------------------


@pytest.mark.parametrize(("flag", "value"), [("--every", "0"), ("--every", "x"), ("--steps", "-1")])
def test_preview_refuses_a_bad_count_with_exit_2_naming_the_flag(tmp_path: Path, flag: str, value: str) -> None:
    spec = write_spec(tmp_path, {"type": "constant", "learning_rate": 0.1})
    result = lrserve("preview", str(spec), flag, value)
    assert result.returncode == 2
    assert f"argument {flag}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["serve", "preview"])
def test_a_client_only_install_says_to_install_the_server_extra(tmp_path: Path, command: str) -> None:
    """As with `pip install lrserve` (httpx only): the server's packages cannot be imported."""
    hide = "import sys; [sys.modules.__setitem__(m, None) for m in ('fastapi', 'uvicorn', 'numpy')]; "
    args = ["serve", "--port", str(free_port())] if command == "serve" else ["preview", "spec.json"]
    result = subprocess.run(
        [sys.executable, "-c", hide + f"from lrserve.cli import main; sys.exit(main({args!r}))"],
        env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lrserve {command}: needs the server, which is not installed here (missing: fastapi, uvicorn, numpy); "
        "install it with: pip install 'lrserve[server]'"
    ]


def test_a_missing_postgresql_database_is_named_at_once_with_the_createdb_command() -> None:
    result = subprocess.run(
        [lrserve_script(), "serve", "--port", str(free_port()),
         "--database", "postgresql://postgres@127.0.0.1:5432/lrserve_no_such_db"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # no pool warnings
    assert 'database "lrserve_no_such_db" does not exist' in lines[0]
    assert lines[0].endswith("createdb -h 127.0.0.1 -p 5432 -U postgres lrserve_no_such_db")


def test_preview_refuses_a_recursive_expression_too_costly_as_a_put_would(tmp_path: Path) -> None:
    costly = {"type": "expression", "expression": " + ".join(["lr * lr"] * 20), "recursive": True,
              "initial_learning_rate": 0.001}
    result = lrserve("preview", str(write_spec(tmp_path, costly)), "--steps", "3")
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "schedule: expression is too costly" in result.stderr
    assert "Traceback" not in result.stderr
