// The API client: every call to the Reporter dialect goes through `request`, which adds the bearer
// token, turns the JSON error shape into an ApiError and drives the progress bar.

const TOKEN_KEY = "connhub.console.token";
const BASE = "/v1/management/connections";
const PROGRESS_DELAY_MS = 300;

// Session storage: the token lives as long as the tab (never in local storage, which outlives it
// and is shared by every tab), and never goes into a URL.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `the server answered ${status}`);
    this.status = status;
    this.code = body?.code;
    this.title = body?.title;
    this.fields = body?.fields || {};
    this.report = body?.report;
  }
}

let pending = 0;
let progressTimer = null;
function progress(delta) {
  pending += delta;
  const bar = document.getElementById("progress");
  if (pending > 0 && progressTimer === null) {
    progressTimer = setTimeout(() => { bar.hidden = false; }, PROGRESS_DELAY_MS);
  } else if (pending === 0) {
    clearTimeout(progressTimer);
    progressTimer = null;
    bar.hidden = true;
  }
}

export async function request(method, path, { query, body, headers = {}, bearer = token.get() } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const init = { method, headers: { Accept: "application/json", ...headers }, cache: "no-store" };
  if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  progress(1);
  try {
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw new ApiError(0, { message: "The server cannot be reached. Check that Connhub is running." });
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401) window.dispatchEvent(new CustomEvent("connhub:unauthorized", { detail: error }));
      throw error;
    }
    return { data, etag: response.headers.get("ETag") };
  } finally {
    progress(-1);
  }
}

const product = (name) => (name ? { "X-Product-Name": name } : {});
const at = (id) => `${BASE}/${encodeURIComponent(id)}`;
const data = async (call) => (await call).data;

export const api = {
  session: (bearer) => data(request("GET", "/v1/session", { bearer })),
  list: (query, productName) => data(request("GET", BASE, { query, headers: product(productName) })),
  get: (id) => request("GET", at(id)),
  create: (body, productName) => data(request("POST", BASE, { body, headers: product(productName) })),
  update: (id, body, etag) => data(request("PATCH", at(id), { body, headers: etag ? { "If-Match": etag } : {} })),
  remove: (id) => request("DELETE", at(id)),
  test: (id) => data(request("POST", `${at(id)}/test`)),
  testUnsaved: (body) => data(request("POST", `${BASE}/test`, { body })),
  schema: (id, refresh) => data(request("GET", `${at(id)}/schema`, { query: { refresh: refresh ? "true" : "" } })),
};
