// Range test: a run's loss against its lr on a log axis, from GET /runs/{id}/lr-finder, with the
// suggested lr marked. #/range-test/<id>?monitor=loss

import { get, runPath } from "../api.js";
import { lineChart } from "../charts.js";
import { formatLr, h } from "../dom.js";

export async function render(target, { runId, query }) {
  const monitor = query.get("monitor") || "loss";
  const finder = await get(`${runPath(runId)}/lr-finder`, { monitor });
  const suggestion = finder.suggestion;  // a number, or null with too few points
  const points = [...finder.points].sort((a, b) => a.lr - b.lr);
  const chartBox = h("div", { class: "chart", id: "range-chart" });
  const monitorInput = h("input", { type: "text", name: "monitor", value: monitor, "aria-label": "monitor" });
  target.replaceChildren(
    h("h1", {}, "Range test of ", h("a", { href: `#/runs/${encodeURIComponent(runId)}`, class: "run-id" }, runId)),
    h("form", { class: "search", onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/range-test/${encodeURIComponent(runId)}?monitor=${encodeURIComponent(monitorInput.value)}`;
    } }, h("label", {}, "metric ", monitorInput), h("button", { type: "submit" }, "Show")),
    h("dl", { class: "summary" },
      h("dt", {}, "suggested lr"), h("dd", { dataset: { field: "suggestion" } },
        suggestion === null ? "— (too few points)" : formatLr(suggestion)),
      h("dt", {}, "diverged at"), h("dd", { dataset: { field: "diverged_at" } }, finder.diverged_at ?? "—"),
      h("dt", {}, "points"), h("dd", {}, points.length)),
    chartBox);
  if (points.length) {
    lineChart(chartBox, "range-test", {
      data: [points.map((p) => p.lr), points.map((p) => p.loss), points.map((p) => p.smoothed)],
      series: [{ label: monitor, color: "#94a3b8" }, { label: `${monitor} (smoothed)`, color: "#2563eb", width: 2 }],
      xLabel: "learning rate", yLabel: monitor, logX: true,
      markers: suggestion === null ? [] : [{ x: suggestion, kind: "suggestion",
                                            label: `suggested lr ${formatLr(suggestion)}` }],
    });
  }
  return null;
}
