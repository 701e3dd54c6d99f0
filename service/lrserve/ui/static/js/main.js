// The app shell: hash routes to pages, and the token prompt shown instead of any page while the API
// answers 401. Routes: #/runs, #/runs/<id>, #/compare?ids=a,b, #/playground, #/range-test/<id>.

import { NeedsToken, token } from "./api.js";
import { errorBox, h } from "./dom.js";
import * as compare from "./pages/compare.js";
import * as playground from "./pages/playground.js";
import * as rangeTest from "./pages/rangetest.js";
import * as run from "./pages/run.js";
import * as runs from "./pages/runs.js";
import { registry } from "./charts.js";

const view = document.getElementById("view");
const forget = document.getElementById("forget-token");
let cleanup = null;
let generation = 0;

function route() {
  const [path, queryString] = (location.hash.slice(1) || "/runs").split("?");
  const query = new URLSearchParams(queryString || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "runs" && parts.length === 2) return { page: run, name: "runs", args: { runId: parts[1], query } };
  if (parts[0] === "compare") return { page: compare, name: "compare", args: { query } };
  if (parts[0] === "playground") return { page: playground, name: "playground", args: { query } };
  if (parts[0] === "range-test" && parts.length === 2) {
    return { page: rangeTest, name: "runs", args: { runId: parts[1], query } };
  }
  return { page: runs, name: "runs", args: { query } };
}

export async function show() {
  cleanup?.();
  cleanup = null;
  const mine = ++generation;
  const { page, name, args } = route();
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === name));
  forget.hidden = !token.get();
  const target = h("div", { class: "page" });
  view.replaceChildren(target);
  registry.ready = false;
  try {
    cleanup = (await page.render(target, { ...args, onNeedsToken: askForToken })) || null;
    if (mine === generation) registry.ready = true;
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof NeedsToken) askForToken();
    else target.replaceChildren(errorBox(error));
  }
}

/** Replace whatever the page shows with the token form: no data stays on screen without a token. */
export function askForToken() {
  cleanup?.();
  cleanup = null;
  generation++;
  Object.values(registry.charts).forEach((chart) => chart.destroy());
  registry.charts = {};
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password",
                             placeholder: "token", required: true });
  const form = h("form", { class: "token-form", onsubmit: (event) => {
    event.preventDefault();
    token.set(input.value.trim());
    show();
  } },
  h("h1", {}, "Token required"),
  h("p", {}, token.get() ? "That token was refused. " : "",
    "This service needs a token (LRSERVE_TOKEN, or LRSERVE_READ_TOKEN to read only). It is kept in this ",
    "tab's session storage and sent only as an Authorization header."),
  h("label", { for: "token" }, "Token "), input, " ", h("button", { type: "submit" }, "Use token"));
  view.replaceChildren(form);
  input.focus();
}

forget.addEventListener("click", () => { token.forget(); show(); });
window.addEventListener("hashchange", show);
show();
