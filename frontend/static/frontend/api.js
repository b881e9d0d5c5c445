// The JSON API as the pages use it: session cookie + CSRF token, JSON in and out.

export function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** fetch() for the API. Resolves to {ok, status, data, headers}; never throws on HTTP errors.
 *  A network failure resolves to status 0 with data.detail saying so. */
export async function api(method, url, { body, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json", ...headers } };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    return { ok: false, status: 0, data: { detail: "The server could not be reached." }, headers: new Headers() };
  }
  let data = null;
  if ((response.headers.get("Content-Type") || "").includes("json")) {
    data = await response.json().catch(() => null);
  }
  return { ok: response.ok, status: response.status, data, headers: response.headers };
}

/** The list from a plain or a paginated ({results}) API response. */
export function results(data) {
  return Array.isArray(data) ? data : (data?.results ?? []);
}

/** The message to show for a failed call that has no field errors. */
export function failure(response, doing) {
  const detail = response.data?.detail;
  if (detail) return `${doing} failed: ${detail}`;
  return response.status ? `${doing} failed (HTTP ${response.status}).` : `${doing} failed: the server could not be reached.`;
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const STEPS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];

/** "5 minutes ago", "yesterday", "just now". */
export function relativeTime(date, now = new Date()) {
  const seconds = Math.round((date - now) / 1000);
  for (const [unit, size] of STEPS) {
    if (Math.abs(seconds) >= size) return RELATIVE.format(Math.trunc(seconds / size), unit);
  }
  return "just now";
}
