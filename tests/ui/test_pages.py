"""The web UI in a real headless chromium against a real `lrserve serve` with real runs: every page loads
without a console error, the plotted lr curve is the API's, a plateau reduction made during the test shows
up as a marker, compare overlays two runs, the playground shows errors at their field and creates runs."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import httpx
import pytest

from support import HALVING_PLATEAU, accepted, create_run

COSINE_WITH_PLATEAU: dict[str, Any] = {
    "schedule": {"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 300, "alpha": 0.1},
    "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1},
    "step_unit": "epoch",
}
ONE_CYCLE: dict[str, Any] = {"schedule": {"type": "one_cycle", "max_lr": 0.05, "total_steps": 300},
                             "step_unit": "batch"}


def open_page(page, server, route: str) -> None:
    page.goto(f"{server.url}/ui/#{route}")
    page.wait_for_function("window.lrserveUi && window.lrserveUi.ready === true")


def plotted(page, chart: str) -> list[list[float | None]]:
    return page.evaluate(f"window.lrserveUi.charts[{chart!r}].data.map((column) => Array.from(column))")


def train(api: httpx.Client, run_id: str, losses: list[float]) -> None:
    for step, loss in enumerate(losses):
        accepted(api, run_id, step, {"val_loss": loss, "accuracy": 0.5 + step / 100})


def test_the_pages_are_served_from_the_installed_package(api: httpx.Client) -> None:
    shipped = files("lrserve.ui") / "static"
    for name in ("index.html", "js/main.js", "app.css", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/LICENSE"):
        served = api.get(f"/ui/{name}")
        assert served.status_code == 200, name
        assert served.content == (shipped / name).read_bytes(), name
    assert api.get("/ui", follow_redirects=True).text == (shipped / "index.html").read_text()


def test_the_pages_load_nothing_from_the_network(page, server, console, api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, ONE_CYCLE)
    foreign: list[str] = []
    page.on("request", lambda request: request.url.startswith(server.url) or foreign.append(request.url))

    for route in ("/runs", f"/runs/{run_id}", f"/compare?ids={run_id}", "/playground"):
        open_page(page, server, route)

    assert foreign == []
    assert console.errors == []


def test_the_runs_page_lists_runs_with_their_current_lr(page, server, console, api, run_id, screenshots) -> None:
    create_run(api, run_id, COSINE_WITH_PLATEAU)
    train(api, run_id, [1.0, 0.8, 0.9, 0.95])  # two non-improving reports: two reductions (keras, patience 1)
    create_run(api, f"{run_id}-b", ONE_CYCLE)

    open_page(page, server, f"/runs?prefix={run_id}")

    row = page.locator(f"tr[data-run-id='{run_id}']")
    cells = row.locator("td").all_inner_texts()
    expected_lr = api.get(f"/runs/{run_id}/lr", params={"step": 4}).json()["lr"]
    assert cells[1:] == [run_id, "cosine_decay", "epoch", "3", f"{expected_lr:.6g}", "2"]
    assert page.locator("tbody tr").count() == 2
    assert "null" not in page.locator("main").inner_text()
    assert console.errors == []
    page.screenshot(path=str(screenshots / "runs.png"), full_page=True)


def test_the_runs_page_pages_through_runs(page, server, console, api, run_id) -> None:
    ids = [f"{run_id}-{i:02d}" for i in range(27)]
    for each in ids:
        create_run(api, each, ONE_CYCLE)

    open_page(page, server, f"/runs?prefix={run_id}-")
    first = page.locator("a.run-id").all_inner_texts()
    page.click("a.next")
    page.wait_for_function("window.lrserveUi.ready === true && location.hash.includes('trail=')")
    second = page.locator("a.run-id").all_inner_texts()

    assert first + second == ids
    assert console.errors == []


def test_the_plotted_lr_curve_is_the_apis(page, server, console, api, run_id, screenshots) -> None:
    create_run(api, run_id, COSINE_WITH_PLATEAU)
    train(api, run_id, [1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.9])
    assert api.post(f"/runs/{run_id}/revisions", json={
        "from_step": 150, "schedule": {"type": "constant", "learning_rate": 0.004}, "reason": "ui test"}).status_code == 201

    open_page(page, server, f"/runs/{run_id}")
    steps, lrs = plotted(page, "lr")

    every = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": steps[-1] + 1}).json()["lr"]
    assert lrs == [every[int(step)] for step in steps]
    assert min(lrs) == min(every) and max(lrs) == max(every)
    reductions = [r["step"] + 1 for r in api.get(f"/runs/{run_id}/metrics").json()["reports"] if r["reduced"]]
    assert len(reductions) == 4  # 0.95, 0.97, 0.85 and 0.9 do not improve (keras, patience 1)
    markers = page.locator(".marker.reduction").evaluate_all("(ms) => ms.map((m) => Number(m.dataset.x))")
    assert markers == reductions
    assert page.locator(".marker.revision").get_attribute("data-x") == "150"
    assert page.locator("dd[data-field='reductions']").inner_text() == "4"
    assert page.locator("table.reports tbody tr").count() == 7
    assert "null" not in page.locator(".log").inner_text() + page.locator(".state").inner_text()
    assert page.locator(".chart.metric").evaluate_all("(cs) => cs.map((c) => c.dataset.metric)") == \
        ["val_loss", "accuracy"]
    assert console.errors == []
    page.screenshot(path=str(screenshots / "run.png"), full_page=True)


def test_a_reduction_made_while_the_page_is_open_appears_as_a_marker(page, server, console, api, run_id) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})
    open_page(page, server, f"/runs/{run_id}")
    assert page.locator(".marker.reduction").count() == 0

    outcome = accepted(api, run_id, 1, {"val_loss": 2.0})

    assert outcome["reduced"] is True
    page.wait_for_selector(".marker.reduction[data-x='2']")  # the first step with the halved lr
    page.wait_for_function("document.querySelector(\"dd[data-field='latest step']\").textContent === '1'")
    assert page.locator("table.reports tbody tr").count() == 2
    assert console.errors == []


def test_compare_overlays_two_runs(page, server, console, api, run_id, screenshots) -> None:
    create_run(api, f"{run_id}-cosine", COSINE_WITH_PLATEAU)
    create_run(api, f"{run_id}-onecycle", ONE_CYCLE)
    train(api, f"{run_id}-cosine", [1.0, 0.7, 0.6, 0.65, 0.7])
    train(api, f"{run_id}-onecycle", [1.0, 0.6, 0.5, 0.45])

    open_page(page, server, f"/compare?ids={run_id}-cosine,{run_id}-onecycle&metric=val_loss")

    xs, cosine, onecycle = plotted(page, "compare-lr")
    for name, column in ((f"{run_id}-cosine", cosine), (f"{run_id}-onecycle", onecycle)):
        values = api.get(f"/runs/{name}/lr/range", params={"start": 0, "stop": int(xs[-1]) + 1}).json()["lr"]
        assert [(x, v) for x, v in zip(xs, column) if v is not None] == [(x, values[int(x)]) for x, v in
                                                                          zip(xs, column) if v is not None]
        assert sum(v is not None for v in column) > 10
    _, first, second = plotted(page, "compare-metric")
    assert first == [1.0, 0.7, 0.6, 0.65, 0.7] and second == [1.0, 0.6, 0.5, 0.45, None]
    assert page.locator("ul.compared a.run-id").all_inner_texts() == [f"{run_id}-cosine", f"{run_id}-onecycle"]
    assert console.errors == []
    page.screenshot(path=str(screenshots / "compare.png"), full_page=True)


def test_the_playground_shows_an_error_at_its_field(page, server, console) -> None:
    open_page(page, server, "/playground")
    bad = '{\n  "schedule": {\n    "type": "cosine_decay",\n    "initial_learning_rate": 0.1,\n    "decay_stepz": 100\n  }\n}'

    page.fill("#spec", bad)

    problem = page.wait_for_selector("#spec-errors li.problem[data-field='schedule.decay_stepz']")
    assert "unknown field" in problem.inner_text() and "did you mean 'decay_steps'" in problem.inner_text()
    assert page.locator("#spec-errors li.problem[data-field='schedule.decay_steps']").inner_text().endswith(
        "is required")
    marked = page.locator(".gutter .line.bad[data-field='schedule.decay_stepz']")
    assert marked.inner_text() == "5"  # the line that holds the misspelt field
    assert page.locator("#preview-chart canvas").count() == 0  # no curve for a spec that is not valid
    # chromium logs the 422 that answered the bad spec (as it logs any failed fetch); nothing else
    assert [e for e in console.errors if "status of 422" not in e] == []


def test_the_playground_previews_a_good_spec_and_creates_its_run(page, server, console, api, run_id,
                                                                  screenshots) -> None:
    open_page(page, server, "/playground")
    spec = {"schedule": {"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 30, "gamma": 0.5},
            "step_unit": "epoch"}
    page.fill("#spec", str(spec).replace("'", '"'))
    page.wait_for_function("window.lrserveUi.charts.preview && window.lrserveUi.charts.preview.data[1][0] === 0.1"
                           " && window.lrserveUi.charts.preview.data[1].includes(0.05)")
    assert page.locator("#spec-errors li").count() == 0
    page.screenshot(path=str(screenshots / "playground.png"), full_page=True)

    page.fill("#run-id", run_id)
    page.click("#create-run")

    page.wait_for_function(f"location.hash === '#/runs/{run_id}' && window.lrserveUi.ready === true")
    created = api.get(f"/runs/{run_id}")
    assert created.status_code == 200
    assert created.json()["spec"]["schedule"]["step_size"] == 30
    assert console.errors == []


def test_the_range_test_plots_loss_against_lr_with_the_suggestion(page, server, console, api, run_id,
                                                                    screenshots) -> None:
    ramp = {"schedule": {"type": "expression", "expression": "min(1e-5 * 1.2 ** step, 10)"}, "step_unit": "batch"}
    create_run(api, run_id, ramp)
    for step in range(60):
        lr = 1e-5 * 1.2 ** step
        loss = 2.0 - 1.5 * min(1.0, lr / 1e-3) + max(0.0, lr - 1e-2) * 400
        accepted(api, run_id, step, {"loss": loss})
    finder = api.get(f"/runs/{run_id}/lr-finder", params={"monitor": "loss"})
    assert finder.status_code == 200, finder.text

    open_page(page, server, f"/range-test/{run_id}?monitor=loss")

    body = finder.json()
    lrs, losses, smoothed = plotted(page, "range-test")
    assert lrs == sorted(p["lr"] for p in body["points"])
    assert losses == [p["loss"] for p in sorted(body["points"], key=lambda p: p["lr"])]
    assert body["suggestion"] is not None
    assert float(page.locator(".marker.suggestion").get_attribute("data-x")) == body["suggestion"]
    assert console.errors == []
    page.screenshot(path=str(screenshots / "range-test.png"), full_page=True)
