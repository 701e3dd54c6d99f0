"""`lrserve runs`, `runs show`, `range`, `plot` and `diff` against a real `lrserve serve` with a token set,
each compared with what the API itself answers; `plot SPEC.json` without any server."""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import Server, free_port, installed_script, running_server

TOKEN = "cl1-t0ken"
PATIENT = {"schedule": {"type": "constant", "learning_rate": 0.1},
           "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}
MORE_PATIENT = {"schedule": {"type": "constant", "learning_rate": 0.1},
                "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 2}}
DECAY = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.5, "decay_steps": 3,
                      "decay_rate": 0.7}, "step_unit": "batch"}
LOSSES = [1.0, 0.9, 0.95, 0.97, 0.99, 0.98]  # improves once, then never: reductions follow


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service with a token and four runs: cli-a and cli-b (same reports, patience 1 and 2, and a
    revision of cli-b at step 10), cli-decay (no reports), other-run (outside the cli- prefix)."""
    database = f"sqlite:///{tmp_path_factory.mktemp('cli-client') / 'lrserve.db'}"
    with running_server(database, env={"LRSERVE_TOKEN": TOKEN}) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api:
            for run_id, spec in (("cli-a", PATIENT), ("cli-b", MORE_PATIENT), ("cli-decay", DECAY),
                                 ("other-run", DECAY)):
                assert api.put(f"/runs/{run_id}", json=spec).status_code == 201
            for step, loss in enumerate(LOSSES):
                for run_id in ("cli-a", "cli-b"):
                    answer = api.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": {"val_loss": loss}})
                    assert answer.status_code == 200, answer.text
            revised = api.post("/runs/cli-b/revisions", json={
                "from_step": 10, "schedule": {"type": "constant", "learning_rate": 0.01}, "reason": "cli test"})
            assert revised.status_code == 201, revised.text
        yield server


@pytest.fixture
def api(service: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client


def lrserve(*args: str, url: str | None = None, token: str | None = TOKEN, cwd: Path | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """The console script with the service in LRSERVE_URL and the token in LRSERVE_TOKEN."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRSERVE_")}
    env.update({"LRSERVE_URL": url} if url else {})
    env.update({"LRSERVE_TOKEN": token} if token else {})
    return subprocess.run([installed_script("lrserve"), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def api_range(api: httpx.Client, run_id: str, start: int, stop: int, every: int = 1) -> list[float]:
    answer = api.get(f"/runs/{run_id}/lr/range", params={"start": start, "stop": stop, "every": every})
    assert answer.status_code == 200, answer.text
    return answer.json()["lr"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --- runs ------------------------------------------------------------------------------------


def test_runs_lists_each_run_with_its_type_latest_step_lr_and_reductions(service: Server, api: httpx.Client) -> None:
    listed = json.loads(ok(lrserve("runs", "--prefix", "cli-", "--json", url=service.url)))["runs"]

    assert [row["run_id"] for row in listed] == ["cli-a", "cli-b", "cli-decay"]
    by_id = {row["run_id"]: row for row in listed}
    for run_id in by_id:
        run = api.get(f"/runs/{run_id}").json()
        next_step = run["latest_step"] + 1 if run["latest_step"] is not None else 0
        assert by_id[run_id]["lr"] == api.get(f"/runs/{run_id}/lr", params={"step": next_step}).json()["lr"]
        assert by_id[run_id]["latest_step"] == run["latest_step"]
        assert by_id[run_id]["reductions"] == (run["state"]["reductions"] if run["state"] else None)
    assert by_id["cli-a"]["reductions"] > by_id["cli-b"]["reductions"] > 0
    assert by_id["cli-decay"]["type"] == "exponential_decay" and by_id["cli-decay"]["step_unit"] == "batch"

    table = ok(lrserve("runs", "--limit", "2", url=service.url)).splitlines()
    assert table[0].split()[:3] == ["RUN", "TYPE", "UNIT"]
    assert [line.split()[0] for line in table[1:]] == ["cli-a", "cli-b"]  # oldest first, two of four
    assert table[1].split()[1:4] == ["constant", "epoch", str(len(LOSSES) - 1)]


def test_runs_show_prints_the_spec_tracker_revisions_and_reductions(service: Server, api: httpx.Client) -> None:
    text = ok(lrserve("runs", "show", "cli-b", url=service.url))
    shown = json.loads(ok(lrserve("runs", "show", "cli-b", "--json", url=service.url)))
    reports = api.get("/runs/cli-b/metrics").json()["reports"]
    run = api.get("/runs/cli-b").json()

    assert shown["spec"] == run["spec"] and shown["state"] == run["state"]
    assert [r["from_step"] for r in shown["revisions"]] == [10]
    assert shown["report_summary"]["reduced_at"] == [r["step"] for r in reports if r["reduced"]] != []
    assert shown["report_summary"]["count"] == len(LOSSES)
    assert '"patience": 2' in text and "from step 10" in text and "cli test" in text
    assert f"reductions {run['state']['reductions']}" in text


# --- range -----------------------------------------------------------------------------------


def test_range_csv_is_the_apis_lr_range(service: Server, api: httpx.Client) -> None:
    rows = list(csv.DictReader(io.StringIO(ok(lrserve(
        "range", "cli-decay", "--start", "2", "--stop", "40", "--every", "3", "--csv", url=service.url)))))

    assert [int(row["step"]) for row in rows] == list(range(2, 40, 3))
    assert [float(row["lr"]) for row in rows] == api_range(api, "cli-decay", 2, 40, 3)


def test_range_stops_by_default_after_the_next_step_of_the_latest_report(service: Server, api: httpx.Client) -> None:
    table = ok(lrserve("range", "cli-a", url=service.url)).splitlines()

    assert table[0].split() == ["STEP", "LR"]
    expected = api_range(api, "cli-a", 0, len(LOSSES) + 1)
    assert [(int(s), float(v)) for s, v in (line.split() for line in table[1:])] == list(enumerate(expected))
    assert expected[-1] < expected[0]  # the reductions are in it


# --- diff ------------------------------------------------------------------------------------


def test_diff_names_the_differing_field_the_revision_and_the_first_differing_step(
    service: Server, api: httpx.Client,
) -> None:
    out = ok(lrserve("diff", "cli-a", "cli-b", "--stop", "12", url=service.url))
    a, b = api_range(api, "cli-a", 0, 12), api_range(api, "cli-b", 0, 12)
    first = next(step for step in range(12) if a[step] != b[step])

    assert "plateau.patience: 1 -> 2" in out
    assert "revisions: 0 -> 1" in out and '"from_step": 10' in out
    assert f"first differs at step {first} ({a[first]!r} -> {b[first]!r})" in out
    worst = max(abs(x - y) / max(abs(x), abs(y)) for x, y in zip(a, b))
    assert f"max relative difference {worst:.6g}" in out


def test_diff_of_a_run_with_itself_finds_nothing(service: Server) -> None:
    out = ok(lrserve("diff", "cli-decay", "cli-decay", url=service.url))

    assert "spec: same" in out and "revisions: same" in out and "lr over steps 0..99: same" in out


# --- plot ------------------------------------------------------------------------------------


def test_plot_of_a_run_writes_a_png_of_the_requested_size(service: Server, tmp_path: Path) -> None:
    output = tmp_path / "run.png"
    out = ok(lrserve("plot", "cli-a", "--metric", "val_loss", "--size", "640x480", "-o", str(output),
                     url=service.url))

    assert png_size(output) == (640, 480)
    assert str(output) in out
    from PIL import Image

    with Image.open(output) as image:
        image.load()  # decodes every chunk: a truncated or corrupt file fails here
        assert image.size == (640, 480)
        assert len(image.convert("RGB").getcolors(1 << 20)) > 5  # something was drawn


def test_plot_of_a_run_defaults_to_1000x600_png_and_writes_svg_by_extension(service: Server, tmp_path: Path) -> None:
    ok(lrserve("plot", "cli-b", "--log", url=service.url, cwd=tmp_path))
    ok(lrserve("plot", "cli-b", "-o", "b.svg", url=service.url, cwd=tmp_path))

    assert png_size(tmp_path / "cli-b.png") == (1000, 600)
    root = ElementTree.parse(tmp_path / "b.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "720pt" and root.get("height") == "432pt"  # 1000x600 px at 100 dpi


def test_plot_of_a_spec_file_needs_no_server(tmp_path: Path) -> None:
    spec = tmp_path / "cycle.json"
    spec.write_text(json.dumps({"schedule": {"type": "one_cycle", "max_lr": 0.1, "total_steps": 100}}))
    nobody = f"http://127.0.0.1:{free_port()}"

    out = ok(lrserve("plot", str(spec), "--steps", "120", "-o", str(tmp_path / "cycle.png"), url=nobody,
                     token=None))

    assert "cycle.png" in out
    assert png_size(tmp_path / "cycle.png") == (1000, 600)


def test_plot_of_a_metric_no_report_has_is_a_usage_error_naming_the_metrics(service: Server, tmp_path: Path) -> None:
    result = lrserve("plot", "cli-a", "--metric", "accuracy", "-o", str(tmp_path / "x.png"), url=service.url)

    assert result.returncode == 2, result
    assert "accuracy" in result.stderr and "val_loss" in result.stderr
    assert not (tmp_path / "x.png").exists()


# --- errors ----------------------------------------------------------------------------------


def test_an_api_error_exits_1_with_the_services_detail(service: Server) -> None:
    unknown = lrserve("runs", "show", "no-such-run", url=service.url)
    without_token = lrserve("range", "cli-a", url=service.url, token=None)
    wrong_token = lrserve("runs", "--token", "not-it", url=service.url)

    assert unknown.returncode == 1 and "no-such-run" in unknown.stderr and "404" in unknown.stderr
    for refused in (without_token, wrong_token):
        assert refused.returncode == 1, refused
        assert "401" in refused.stderr and "LRSERVE_TOKEN" in refused.stderr
        assert "Traceback" not in refused.stderr and refused.stdout == ""


def test_the_url_and_token_flags_override_the_environment(service: Server) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = lrserve("runs", "--url", service.url, "--token", TOKEN, url=nobody, token="wrong")

    assert result.returncode == 0, result.stderr
    assert "cli-a" in result.stdout


def test_no_service_at_the_url_is_one_clear_line(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = lrserve("runs", url=nobody)

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert nobody in result.stderr and "lrserve serve" in result.stderr and "LRSERVE_URL" in result.stderr


@pytest.mark.parametrize("args", [
    pytest.param(["plot", "cli-a", "--size", "10x10"], id="tiny-size"),
    pytest.param(["plot", "cli-a", "-o", "out.gif"], id="unknown-format"),
    pytest.param(["range", "cli-a", "--every", "0"], id="every-zero"),
    pytest.param(["range"], id="no-run"),
])
def test_usage_errors_exit_2(service: Server, args: list[str], tmp_path: Path) -> None:
    result = lrserve(*args, url=service.url, cwd=tmp_path)

    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
