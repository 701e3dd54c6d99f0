// Compare: the lr curves of several runs overlaid on one step axis, and one chosen metric of each, as
// articles compare schedules. #/compare?ids=a,b&metric=val_loss

import { get, reportsAfter, runPath } from "../api.js";
import { lineChart, overlay, scaleToggle } from "../charts.js";
import { h } from "../dom.js";
import { toNumber } from "./run.js";

export async function render(target, { query }) {
  const ids = (query.get("ids") || "").split(",").map((id) => id.trim()).filter(Boolean);
  const idsInput = h("input", { type: "text", name: "ids", value: ids.join(","), size: 60,
                                placeholder: "run ids, separated by commas", "aria-label": "run ids" });
  const form = h("form", { class: "search", onsubmit: (event) => {
    event.preventDefault();
    location.hash = `#/compare?ids=${idsInput.value.split(",").map((id) => encodeURIComponent(id.trim())).join(",")}`;
  } }, idsInput, h("button", { type: "submit" }, "Compare"));
  if (!ids.length) {
    target.replaceChildren(h("h1", {}, "Compare"), form,
      h("p", {}, "Name two or more runs (or tick them on the Runs page)."));
    return null;
  }

  const loaded = await Promise.all(ids.map(async (runId) => {
    const stopOf = (await get(`${runPath(runId)}/lr/curve`, { points: 16 })).stop;
    return { runId, stopOf, reports: await reportsAfter(runId) };
  }));
  // One extent for all, so that the shorter schedules are drawn over the same steps as the longest.
  const stop = Math.max(...loaded.map((run) => run.stopOf));
  const curves = await Promise.all(ids.map((runId) => get(`${runPath(runId)}/lr/curve`, { stop })));
  const names = [...new Set(loaded.flatMap((run) => run.reports.flatMap((r) => Object.keys(r.metrics))))].sort();
  const metric = query.get("metric") || names[0];

  let logY = false;
  const lrBox = h("div", { class: "chart", id: "compare-lr" });
  const metricBox = h("div", { class: "chart", id: "compare-metric" });
  const picker = h("select", { name: "metric", "aria-label": "metric", onchange: () => {
    location.hash = `#/compare?ids=${ids.map(encodeURIComponent).join(",")}&metric=${encodeURIComponent(picker.value)}`;
  } }, names.map((name) => new Option(name, name, false, name === metric)));
  target.replaceChildren(h("h1", {}, "Compare"), form,
    h("ul", { class: "compared" }, ids.map((runId) => h("li", {},
      h("a", { href: `#/runs/${encodeURIComponent(runId)}`, class: "run-id" }, runId)))),
    h("section", {}, h("h2", {}, "Learning rate ", scaleToggle((log) => { logY = log; drawLr(); })), lrBox),
    h("section", {}, h("h2", {}, "Metric ", names.length ? picker : null), names.length ? metricBox
      : h("p", {}, "None of these runs has reports yet.")));

  function drawLr() {
    lineChart(lrBox, "compare-lr", {
      data: overlay(curves.map((c) => ({ xs: c.steps, ys: c.lr }))),
      series: ids.map((runId) => ({ label: runId })), xLabel: "step", yLabel: "learning rate", logY,
    });
  }
  drawLr();
  if (names.length) {
    lineChart(metricBox, "compare-metric", {
      data: overlay(loaded.map((run) => {
        const rows = run.reports.filter((r) => metric in r.metrics);
        return { xs: rows.map((r) => r.step), ys: rows.map((r) => toNumber(r.metrics[metric])) };
      })),
      series: ids.map((runId) => ({ label: runId })), xLabel: "step", yLabel: metric,
    });
  }
  return null;
}
