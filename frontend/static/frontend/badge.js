// The header bell: keeps data-unread-count current by polling unread_count with
// If-None-Match (a 304 costs the server nothing to render), and announces changes politely.
import { api } from "./api.js";

const bell = document.querySelector(".bell[data-unread-count]");
const status = document.getElementById("unread-status");
const POLL_MS = Number(window.notiflowPollMs) || 10000;
let etag = null;
let timer = null;

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

/** Ask the server for the count now; `force` skips the ETag (after our own writes). */
export async function refreshUnread({ force = false } = {}) {
  const headers = etag && !force ? { "If-None-Match": etag } : {};
  const response = await api("GET", "/api/notifications/unread_count/", { headers });
  if (response.status === 304 || !response.ok || typeof response.data?.unread !== "number") return;
  etag = response.headers.get("ETag");
  setUnread(response.data.unread);
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refreshUnread();
    schedule();
  }, POLL_MS);
}

if (bell) {
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshUnread().then(schedule);
  });
  schedule();
}
