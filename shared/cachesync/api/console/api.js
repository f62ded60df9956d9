// The query API as the console calls it: the key from sessionStorage on every call, problems
// (RFC 9457) and network failures turned into one ApiError.

const KEY_ITEM = "cachesync.console.apiKey";
// Relative to this module (/console/api.js -> /v1/): works under an API Gateway stage too.
const API_BASE = new URL("../v1/", import.meta.url);

/** The API key of this tab: sessionStorage only (gone with the tab; never a cookie or URL). */
export const session = {
  key() {
    return sessionStorage.getItem(KEY_ITEM);
  },
  signIn(key) {
    sessionStorage.setItem(KEY_ITEM, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY_ITEM);
  },
};

/** A failed call: status 0 for a network failure, else the problem's title and detail. */
export class ApiError extends Error {
  constructor(status, title, detail, problem = null) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
  }

  /** Whether the key itself was refused (401: the console then returns to sign in). A 403
   * refuses one request of a valid key (a scope, a customer): the user stays signed in. */
  get refusesKey() {
    return this.status === 401;
  }
}

/** The API URL of path (relative to /v1/) with query parameters; arrays repeat the name. */
export function apiUrl(path, query = {}) {
  const url = new URL(path, API_BASE);
  for (const [name, value] of Object.entries(query)) {
    const values = Array.isArray(value) ? value : [value];
    for (const item of values) {
      if (item !== undefined && item !== null && item !== "") url.searchParams.append(name, item);
    }
  }
  return url;
}

/** The path of a document: each "/"-separated segment percent-encoded, the slashes kept. */
export function documentPath(key) {
  return "documents/" + key.split("/").map(encodeURIComponent).join("/");
}

/** Call the API; the Response when it succeeded, else throws ApiError. */
export async function call(path, { method = "GET", query = {}, body, key = session.key() } = {}) {
  const headers = { Accept: "application/json, application/problem+json, text/csv" };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, query), init);
  } catch (error) {
    throw new ApiError(0, "Network error", `the API could not be reached (${error.message})`);
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

/** Call the API and parse its JSON answer (null for an empty body). */
export async function callJson(path, options) {
  const response = await call(path, options);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

async function problemOf(response) {
  const text = await response.text().catch(() => "");
  try {
    const problem = JSON.parse(text);
    if (problem && typeof problem === "object") {
      return new ApiError(
        response.status,
        problem.title || response.statusText || `HTTP ${response.status}`,
        problem.detail || "",
        problem,
      );
    }
  } catch {
    // Not JSON (a gateway's own error page, say): fall through to the status line.
  }
  return new ApiError(response.status, response.statusText || `HTTP ${response.status}`, text.slice(0, 200));
}

/** Fetch path as CSV with the key, then save it through a temporary Blob URL. */
export async function downloadCsv(path, query, filename) {
  const response = await call(path, { query: { ...query, format: "csv" } });
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has started the download by now; the URL is no longer needed after it.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
