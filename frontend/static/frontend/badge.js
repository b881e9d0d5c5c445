// The header bell: keeps data-unread-count current and announces changes politely. It
// long-polls unread_count (?wait=25 with If-None-Match): the server holds the request until
// the count or the newest notification changes, so a new one shows within a second, and
// answers 304 after 25 s of nothing. After a failed call it waits RETRY_MS before asking again.
import { api } from "./api.js";

const bell = document.querySelector(".bell[data-unread-count]");
const status = document.getElementById("unread-status");
const RETRY_MS = Number(window.notiflowPollMs) || 10000;
const WAIT_S = 25;
let etag = null;
let listening = false;

export function unreadCount() {
  return bell ? Number(bell.dataset.unreadCount) : 0;
}

export function setUnread(count) {
  if (!bell) return;
  const previous = unreadCount();
  if (count === previous) return;
  bell.dataset.unreadCount = String(count);
  bell.querySelector(".badge").textContent = count > 99 ? "99+" : String(count);
  bell.setAttribute("aria-label", `Notifications: ${count} unread`);
  if (status) status.textContent = count === 1 ? "1 unread notification" : `${count} unread notifications`;
  document.dispatchEvent(new CustomEvent("notiflow:unread", { detail: { count, previous } }));
}

/** Ask the server for the count; `force` skips the ETag (after our own writes), `wait`
 * holds the request until it changes. False when the call failed. */
export async function refreshUnread({ force = false, wait = 0 } = {}) {
  const headers = etag && !force ? { "If-None-Match": etag } : {};
  const url = wait && etag && !force ? `/api/notifications/unread_count/?wait=${wait}` : "/api/notifications/unread_count/";
  const response = await api("GET", url, { headers });
  if (response.status === 304) return true;
  if (!response.ok || typeof response.data?.unread !== "number") return false;
  etag = response.headers.get("ETag");
  setUnread(response.data.unread);
  return true;
}

async function listen() {
  if (listening) return;
  listening = true;
  try {
    while (!document.hidden) {
      if (!(await refreshUnread({ wait: WAIT_S }))) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  } finally {
    listening = false;
  }
}

if (bell) {
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) listen();
  });
  listen();
}
