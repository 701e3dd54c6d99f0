// The public API, as the page calls it. The token the user typed is kept in sessionStorage (gone when
// the tab closes) and sent as `Authorization: Bearer`, never put in a URL. A 401 raises `NeedsToken`,
// which makes the app ask for a token and render nothing else.

const TOKEN_KEY = "lrserve.token";

export class NeedsToken extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

// The API's root: the directory above /ui/, so the UI works behind a path prefix too.
const ROOT = new URL("..", document.baseURI).pathname.replace(/\/$/, "");

export async function request(method, path, { body, query, headers = {} } = {}) {
  const url = new URL(ROOT + path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const sent = { ...headers };
  const bearer = token.get();
  if (bearer) sent.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers: sent, cache: "no-store",
    body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)),
  });
  if (response.status === 401) throw new NeedsToken();
  if (response.status === 304) return { status: 304, body: null, headers: response.headers };
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, parsed && parsed.detail ? parsed.detail : text);
  return { status: response.status, body: parsed, headers: response.headers };
}

export const get = async (path, query) => (await request("GET", path, { query })).body;

export const runPath = (runId) => `/runs/${encodeURIComponent(runId)}`;

/** Every report of a run after `afterStep` (all of them when undefined), a page at a time. */
export async function reportsAfter(runId, afterStep) {
  const reports = [];
  let after = afterStep;
  for (;;) {
    const page = await get(`${runPath(runId)}/metrics`, { after_step: after, limit: 10000 });
    reports.push(...page.reports);
    if (page.next_after_step === null) return reports;
    after = page.next_after_step;
  }
}
