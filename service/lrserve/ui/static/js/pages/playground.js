// Playground: edit a run spec as JSON and see its curve at once (POST /preview, which validates it as
// PUT /runs/{id} does and stores nothing); each error is shown at its field: listed with its path and
// marked on the line of the JSON that holds that field. A button creates the run.

import { ApiError, NeedsToken, request, runPath } from "../api.js";
import { lineChart, registry, scaleToggle } from "../charts.js";
import { debounce, errorBox, h } from "../dom.js";

const EXAMPLE = {
  schedule: { type: "warmup_stable_decay", initial_learning_rate: 0.001, warmup_steps: 200,
              stable_steps: 600, decay_steps: 200, decay_type: "cosine" },
  plateau: null,
  step_unit: "batch",
};

// Each problem in a 422 `detail` starts with the field's path and ": "; problems are joined by "; ".
const PROBLEM = /(?:^|; )([A-Za-z_][\w.]*): /g;

export function problems(detail) {
  const starts = [...detail.matchAll(PROBLEM)];
  return starts.map((match, i) => ({
    field: match[1],
    message: detail.slice(match.index + match[0].length, i + 1 < starts.length ? starts[i + 1].index : undefined),
  }));
}

export async function render(target, { query, onNeedsToken }) {
  const editor = h("textarea", { id: "spec", name: "spec", spellcheck: "false", rows: 18, "aria-label": "run spec" });
  editor.value = query.get("spec") || JSON.stringify(EXAMPLE, null, 2);
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const errors = h("ul", { class: "errors", id: "spec-errors" });
  const warnings = h("ul", { class: "warnings", id: "spec-warnings" });
  const chartBox = h("div", { class: "chart", id: "preview-chart" });
  const runIdInput = h("input", { type: "text", name: "run_id", id: "run-id", placeholder: "run id",
                                  pattern: "[A-Za-z0-9._\\-]{1,128}", "aria-label": "run id" });
  const created = h("p", { class: "created", "aria-live": "polite" });
  let logY = false;
  let last = null;
  let sent = 0;

  async function preview() {
    const mine = ++sent;
    let spec;
    try {
      spec = JSON.parse(editor.value);
    } catch (error) {
      return show(mine, [{ field: "JSON", message: error.message, line: jsonErrorLine(error) }]);
    }
    try {
      const answer = await request("POST", "/preview", { body: spec, query: { points: 2000 } });
      if (mine !== sent) return null;
      last = answer.body;
      show(mine, []);
      warnings.replaceChildren(...(last.warnings || []).map((w) => h("li", { class: "warning" }, w)));
      return draw();
    } catch (error) {
      if (error instanceof NeedsToken) return onNeedsToken();
      if (error instanceof ApiError && error.status === 422) return show(mine, problems(error.detail));
      return show(mine, [{ field: "request", message: error.message }]);
    }
  }

  function show(mine, found) {
    if (mine !== sent) return;
    editor.classList.toggle("invalid", found.length > 0);
    if (found.length) { // no curve for a spec that is not valid: the last good one would mislead
      last = null;
      warnings.replaceChildren();
      registry.charts.preview?.destroy();
      delete registry.charts.preview;
      chartBox.replaceChildren();
    }
    errors.replaceChildren(...found.map((p) => h("li", { class: "problem", dataset: { field: p.field } },
      h("code", { class: "field" }, p.field), " ", p.message)));
    const lines = editor.value.split("\n");
    const marked = new Map(found.map((p) => [p.line ?? lineOf(lines, p.field), p]));
    gutter.replaceChildren(...lines.map((_, i) => h("div", {
      class: marked.has(i) ? "line bad" : "line", title: marked.has(i) ? marked.get(i).message : null,
      dataset: marked.has(i) ? { field: marked.get(i).field } : {} }, String(i + 1))));
  }

  function draw() {
    if (!last) return;
    lineChart(chartBox, "preview", {
      data: [last.steps, last.lr], series: [{ label: "lr" }], xLabel: "step", yLabel: "learning rate", logY,
    });
  }

  async function create() {
    created.replaceChildren();
    const runId = runIdInput.value.trim();
    try {
      const answer = await request("PUT", runPath(runId), { body: editor.value });
      location.hash = `#/runs/${encodeURIComponent(answer.body.run_id)}`;
    } catch (error) {
      if (error instanceof NeedsToken) return onNeedsToken();
      if (error instanceof ApiError && error.status === 422) {
        const found = problems(error.detail);
        show(sent, found);
        created.replaceChildren(errorBox(error));
        return null;
      }
      created.replaceChildren(errorBox(error));
    }
    return null;
  }

  editor.addEventListener("input", debounce(preview, 250));
  editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
  target.replaceChildren(h("h1", {}, "Playground"),
    h("p", {}, "Edit a run spec; its curve follows as you type. Nothing is stored until you create the run."),
    h("div", { class: "editor" }, gutter, editor), errors, warnings,
    h("form", { class: "create", onsubmit: (event) => { event.preventDefault(); create(); } },
      runIdInput, " ", h("button", { type: "submit", id: "create-run" }, "Create run")), created,
    h("section", {}, h("h2", {}, "Preview ", scaleToggle((log) => { logY = log; draw(); })), chartBox));
  await preview();
  return null;
}

/** The line (0-based) of the field's last key in the JSON text, else of its parent's, else none. */
function lineOf(lines, path) {
  const keys = path.split(".").filter((part) => !/^\d+$/.test(part));
  for (let k = keys.length - 1; k >= 0; k--) {
    const found = lines.findIndex((line) => line.includes(`"${keys[k]}"`));
    if (found >= 0) return found;
  }
  return -1;
}

function jsonErrorLine(error) {
  const match = /line (\d+)/.exec(error.message);
  return match ? Number(match[1]) - 1 : -1;
}
