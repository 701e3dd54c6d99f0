// Runs: a page of runs with their schedule, step unit, latest step, current lr and reductions; search
// by id prefix; pages through `next_cursor` (the cursors of earlier pages are kept for "previous").

import { NeedsToken, get, runPath } from "../api.js";
import { formatLr, h } from "../dom.js";

const PAGE_SIZE = 25;

export async function render(target, { query }) {
  const prefix = query.get("prefix") || "";
  const cursors = (query.get("trail") || "").split(",").filter(Boolean);
  const cursor = cursors[cursors.length - 1];
  const page = await get("/runs", { limit: PAGE_SIZE, cursor, prefix });
  const rows = await Promise.all(page.runs.map(details));

  const search = h("input", { type: "search", name: "prefix", value: prefix, placeholder: "run id prefix",
                              "aria-label": "run id prefix" });
  const form = h("form", { class: "search", onsubmit: (event) => {
    event.preventDefault();
    location.hash = `#/runs?prefix=${encodeURIComponent(search.value.trim())}`;
  } }, search, h("button", { type: "submit" }, "Search"));

  const link = (trail) => `#/runs?prefix=${encodeURIComponent(prefix)}&trail=${trail.join(",")}`;
  const nav = h("p", { class: "pager" },
    cursors.length ? h("a", { href: link(cursors.slice(0, -1)), class: "previous" }, "← previous") : null,
    page.next_cursor ? h("a", { href: link([...cursors, page.next_cursor]), class: "next" }, "next →") : null);

  const compareBox = (runId) => h("input", { type: "checkbox", name: "compare", value: runId,
                                             "aria-label": `compare ${runId}` });
  const table = h("table", { class: "runs" },
    h("thead", {}, h("tr", {}, ["", "run", "schedule", "step unit", "latest step", "current lr", "reductions"]
      .map((title) => h("th", {}, title)))),
    h("tbody", {}, rows.map((row) => h("tr", { dataset: { runId: row.run_id } },
      h("td", {}, compareBox(row.run_id)),
      h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(row.run_id)}`, class: "run-id" }, row.run_id)),
      h("td", {}, row.spec.schedule.type),
      h("td", {}, row.spec.step_unit),
      h("td", { class: "num" }, row.latest_step ?? "—"),
      h("td", { class: "num" }, formatLr(row.current_lr)),
      h("td", { class: "num" }, row.reductions ?? "—")))));
  const compareButton = h("button", { type: "button", onclick: () => {
    const ids = [...table.querySelectorAll("input[name=compare]:checked")].map((box) => box.value);
    location.hash = `#/compare?ids=${ids.map(encodeURIComponent).join(",")}`;
  } }, "Compare selected");

  target.replaceChildren(...[h("h1", {}, "Runs"), form,
    rows.length ? table : h("p", { class: "empty" }, prefix ? `No run id starts with “${prefix}”.` :
      "No runs yet: create one in the playground, or with PUT /runs/{run_id}."),
    rows.length ? compareButton : null, nav].filter(Boolean));
}

/** A row: the listed run, with its reductions (from the run) and its lr at the next step to train. */
async function details(summary) {
  const next = summary.latest_step === null ? 0 : summary.latest_step + 1;
  const [run, lr] = await Promise.all([
    summary.spec.plateau ? get(runPath(summary.run_id)) : null,
    get(`${runPath(summary.run_id)}/lr`, { step: next }).catch((error) => {
      if (error instanceof NeedsToken) throw error;
      return null; // e.g. a step whose lr is not finite: shown as "—"
    }),
  ]);
  return { ...summary, reductions: run ? run.state.reductions : null, current_lr: lr ? lr.lr : null };
}
