// Charts with the vendored uPlot (a global from vendor/uplot/uPlot.iife.min.js). Markers (reductions,
// revisions, a range test's suggestion) are DOM elements on the chart's overlay, so they can be
// inspected like any other part of the page. Every chart drawn is kept in `window.lrserveUi.charts`
// under its name; `chart.data` is exactly what is plotted.

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

export const color = (index) => COLORS[index % COLORS.length];

export const registry = (window.lrserveUi = window.lrserveUi || { charts: {} });

/** A line chart in `target` (replacing what it held): `data` is [xs, ...ys] (nulls allowed). */
export function lineChart(target, name, { data, series, xLabel, yLabel, logY = false, logX = false,
                                           markers = [], height = 280 }) {
  registry.charts[name]?.destroy();
  target.replaceChildren();
  const positive = (values) => values.map((v) => (v === null || v > 0 ? v : null));
  const plotted = logY ? [data[0], ...data.slice(1).map(positive)] : data;
  const options = {
    width: Math.max(320, target.clientWidth || 800),
    height,
    scales: { x: { time: false, distr: logX ? 3 : 1 }, y: { distr: logY ? 3 : 1 } },
    axes: [{ label: xLabel, values: ticks }, { label: yLabel, size: 70, values: ticks }],
    series: [{ label: xLabel }, ...series.map((s, i) => ({
      label: s.label, stroke: s.color || color(i), width: s.width || 1.5, spanGaps: true,
      dash: s.dash, points: { show: false },
    }))],
    legend: { live: true },
    hooks: { draw: [(u) => placeMarkers(u, markers)] },
  };
  const chart = new uPlot(options, plotted, target);
  registry.charts[name] = chart;
  return chart;
}

/** Axis labels that stay readable from 1e-7 to 1e6: uPlot's default rounds a log axis' 1e-5 to "0". */
function ticks(u, splits) {
  return splits.map((v) => {
    if (v === null || v === undefined) return "";
    const size = Math.abs(v);
    if (v !== 0 && (size < 1e-3 || size >= 1e6)) return v.toExponential(size < 1e-3 ? 0 : 1).replace("e-", "e−");
    return String(Number(v.toPrecision(4)));
  });
}

function placeMarkers(u, markers) {
  u.over.querySelectorAll(".marker").forEach((m) => m.remove());
  for (const { x, kind, label } of markers) {
    const left = u.valToPos(x, "x");
    if (!Number.isFinite(left) || left < 0 || left > u.over.clientWidth + 0.5) continue;
    const marker = document.createElement("div");
    marker.className = `marker ${kind}`;
    marker.dataset.x = String(x);
    marker.title = label;
    marker.style.left = `${left}px`;
    u.over.append(marker);
  }
}

/** Several (xs, ys) series on one x axis: the union of their xs, each series null where it has no point. */
export function overlay(seriesList) {
  const xs = [...new Set(seriesList.flatMap((s) => s.xs))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = seriesList.map((s) => {
    const column = new Array(xs.length).fill(null);
    s.xs.forEach((x, i) => { column[index.get(x)] = s.ys[i]; });
    return column;
  });
  return [xs, ...ys];
}

export function scaleToggle(onChange, initialLog = false) {
  const select = document.createElement("select");
  select.className = "scale";
  select.setAttribute("aria-label", "y scale");
  for (const [value, text] of [["linear", "linear scale"], ["log", "log scale"]]) {
    const option = new Option(text, value, false, (value === "log") === initialLog);
    select.append(option);
  }
  select.addEventListener("change", () => onChange(select.value === "log"));
  return select;
}
