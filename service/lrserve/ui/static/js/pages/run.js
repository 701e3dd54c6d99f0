// A run: its lr curve (downsampled by the server, with reduction and revision markers), its metrics
// against the step, the spec, the tracker state and the report log. While the page is open it polls
// GET /runs/{id} every 2 s with If-None-Match: an idle run costs a 304; a change reloads the curve and
// fetches only the reports after the latest one shown.

import { NeedsToken, get, reportsAfter, request, runPath } from "../api.js";
import { lineChart, scaleToggle } from "../charts.js";
import { errorBox, formatLr, h } from "../dom.js";

const POLL_MS = 2000;
const LOG_ROWS = 200;

export async function render(target, { runId, onNeedsToken }) {
  const first = await request("GET", runPath(runId));
  let run = first.body;
  let etag = first.headers.get("ETag");
  let reports = await reportsAfter(runId);
  let curve = await get(`${runPath(runId)}/lr/curve`);
  let nextLr = await lrOfNextStep(runId, run);
  let logY = false;

  const summary = h("dl", { class: "summary" });
  const lrBox = h("div", { class: "chart", id: "lr-chart" });
  const metricsBox = h("div", { class: "metrics" });
  const specBox = h("pre", { class: "spec" });
  const stateBox = h("div", { class: "state" });
  const logBox = h("div", { class: "log" });
  const status = h("p", { class: "status", "aria-live": "polite" });
  target.replaceChildren(
    h("h1", {}, "Run ", h("span", { class: "run-id" }, runId)), summary, status,
    h("section", {}, h("h2", {}, "Learning rate ", scaleToggle((log) => { logY = log; drawLr(); })), lrBox,
      h("p", { class: "legend-note" }, h("span", { class: "key reduction" }), " plateau reduction ",
        h("span", { class: "key revision" }), " revision")),
    h("section", {}, h("h2", {}, "Metrics"), metricsBox),
    h("div", { class: "columns" },
      h("section", {}, h("h2", {}, "Spec"), specBox),
      h("section", {}, h("h2", {}, "Tracker"), stateBox)),
    h("section", {}, h("h2", {}, "Report log"), logBox),
    h("p", {}, h("a", { href: `#/range-test/${encodeURIComponent(runId)}` }, "Range test of this run →")));

  function drawLr() {
    lineChart(lrBox, "lr", {
      data: [curve.steps, curve.lr], series: [{ label: "lr" }], xLabel: "step", yLabel: "learning rate", logY,
      markers: [...curve.reductions.map((x) => ({ x, kind: "reduction", label: `plateau reduction from step ${x}` })),
                ...curve.revisions.map((x) => ({ x, kind: "revision", label: `revision from step ${x}` }))],
    });
  }

  function drawAll() {
    summary.replaceChildren(...[
      ["schedule", run.spec.schedule.type], ["step unit", run.spec.step_unit],
      ["latest step", run.latest_step ?? "—"], ["current lr", formatLr(nextLr)],
      ["reductions", run.state ? run.state.reductions : "—"], ["revisions", run.revisions.length],
    ].flatMap(([term, value]) => [h("dt", {}, term), h("dd", { dataset: { field: term } }, value)]));
    drawLr();
    drawMetrics(metricsBox, reports, run.spec.plateau?.monitor);
    specBox.textContent = JSON.stringify(run.spec, null, 2);
    stateBox.replaceChildren(...present(run.state ? table(["best", "wait", "cooldown_counter", "reductions"],
      [[run.state.best, run.state.wait, run.state.cooldown_counter, run.state.reductions]])
      : h("p", {}, "No plateau tracker."),
    run.revisions.length ? table(["from_step", "schedule", "reason", "created_at"],
      run.revisions.map((r) => [r.from_step, r.schedule.type, r.reason, r.created_at])) : null));
    drawLog();
  }

  function drawLog() {
    const names = [...new Set(reports.flatMap((r) => Object.keys(r.metrics)))];
    const newest = reports.slice(-LOG_ROWS).reverse();
    logBox.replaceChildren(...present(reports.length ? table(["step", ...names, "reduced", "next_lr", "received_at"],
      newest.map((r) => [r.step, ...names.map((n) => r.metrics[n] ?? ""), r.reduced ? "yes" : "",
                         formatLr(r.next_lr), r.received_at]), "reports")
      : h("p", {}, "No reports yet."),
    reports.length > LOG_ROWS ? h("p", {}, `The newest ${LOG_ROWS} of ${reports.length} reports.`) : null));
  }

  drawAll();

  let stopped = false;
  let timer = null;
  async function poll() {
    try {
      const answer = await request("GET", runPath(runId), { headers: etag ? { "If-None-Match": etag } : {} });
      if (answer.status !== 304) {
        const changed = answer.body;
        const rewound = changed.latest_step === null || (run.latest_step !== null && changed.latest_step < run.latest_step);
        const fresh = rewound ? await reportsAfter(runId)
          : await reportsAfter(runId, reports.length ? reports[reports.length - 1].step : undefined);
        curve = await get(`${runPath(runId)}/lr/curve`);
        nextLr = await lrOfNextStep(runId, changed);
        reports = rewound ? fresh : [...reports, ...fresh];
        run = changed;
        etag = answer.headers.get("ETag");
        if (!stopped) drawAll();
      }
      status.textContent = `live: checked ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (error instanceof NeedsToken) { onNeedsToken(); return; }
      status.replaceChildren(errorBox(error));
    }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }
  timer = setTimeout(poll, POLL_MS);
  return () => { stopped = true; clearTimeout(timer); };
}

/** The lr of the next step to train (after the latest report); null where the API refuses it. */
async function lrOfNextStep(runId, run) {
  const step = run.latest_step === null ? 0 : run.latest_step + 1;
  try {
    return (await get(`${runPath(runId)}/lr`, { step })).lr;
  } catch (error) {
    if (error instanceof NeedsToken) throw error;
    return null;
  }
}

/** One chart per metric against the step, the monitored one first. */
function drawMetrics(target, reports, monitor) {
  const names = [...new Set(reports.flatMap((r) => Object.keys(r.metrics)))]
    .sort((a, b) => (b === monitor) - (a === monitor) || a.localeCompare(b));
  if (!names.length) { target.replaceChildren(h("p", {}, "No metrics reported yet.")); return; }
  target.replaceChildren();
  names.forEach((name, index) => {
    const rows = reports.filter((r) => name in r.metrics);
    const box = h("div", { class: "chart metric", dataset: { metric: name } });
    target.append(h("h3", {}, name, name === monitor ? " (monitored)" : ""), box);
    lineChart(box, `metric:${name}`, {
      data: [rows.map((r) => r.step), rows.map((r) => toNumber(r.metrics[name]))],
      series: [{ label: name, color: index === 0 && name === monitor ? "#dc2626" : undefined }],
      xLabel: "step", yLabel: name, height: 200,
    });
  });
}

const present = (...nodes) => nodes.filter(Boolean);

export function toNumber(value) {
  return typeof value === "number" ? value : null; // "NaN" and "±Infinity" are gaps in a chart
}

function table(columns, rows, className) {
  return h("table", { class: className },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell ?? "—"))))));
}
