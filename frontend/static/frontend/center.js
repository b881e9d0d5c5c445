// The notification center: mark read, archive, mark all read, "why am I seeing this",
// live relative times, and a notice when new notifications arrive.
import { api, failure, relativeTime } from "./api.js";
import { refreshUnread, setUnread } from "./badge.js";

const inbox = document.getElementById("inbox");
const status = document.getElementById("center-status");
const markAll = document.getElementById("mark-all-read");

function say(message) {
  status.textContent = "";
  // a fresh text node so the same message twice is announced twice
  requestAnimationFrame(() => { status.textContent = message; });
}

function markItemRead(item) {
  item.classList.remove("unread");
  item.querySelector(".title .visually-hidden")?.remove();
  item.querySelector('[data-action="read"]')?.remove();
}

async function markRead(item, button) {
  button.disabled = true;
  const response = await api("POST", `/api/notifications/${item.dataset.id}/read/`);
  if (!response.ok) {
    button.disabled = false;
    say(failure(response, "Marking read"));
    return;
  }
  item.querySelector('[data-action="archive"]').focus();
  markItemRead(item);
  say("Marked read.");
  refreshUnread({ force: true });
}

async function archive(item, button) {
  button.disabled = true;
  const response = await api("POST", `/api/notifications/${item.dataset.id}/archive/`);
  if (!response.ok) {
    button.disabled = false;
    say(failure(response, "Archiving"));
    return;
  }
  const items = [...inbox.querySelectorAll("li.item")];
  const index = items.indexOf(item);
  const next = items[index + 1] ?? items[index - 1];
  const day = item.closest("section.day");
  item.remove();
  if (!day.querySelector("li.item")) day.remove();
  if (next) {
    next.querySelector("[data-action]").focus();
  } else {
    document.getElementById("empty-state").hidden = false;
    document.querySelector("h1").setAttribute("tabindex", "-1");
    document.querySelector("h1").focus();
  }
  say("Archived.");
  refreshUnread({ force: true });
}

async function explain(details) {
  if (details.dataset.loaded) return;
  details.dataset.loaded = "1";
  const more = details.querySelector(".why-more");
  const response = await api("GET", `/api/notifications/${details.dataset.id}/why/`);
  if (!response.ok || !response.data) return; // the stored reason, shown already, stands
  const { trigger, rule, event } = response.data;
  const list = document.createElement("dl");
  const add = (term, value) => {
    if (!value) return;
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.append(value);
    list.append(dt, dd);
  };
  if (trigger) {
    const link = document.createElement("a");
    link.href = `/triggers/${trigger.id}/`;
    link.textContent = trigger.name;
    add("Trigger", link);
  }
  add("Rule", rule);
  add("Event", event?.name);
  if (list.children.length) more.append(list);
  if (trigger) {
    const mute = document.createElement("button");
    mute.type = "button";
    mute.className = "btn small secondary";
    mute.dataset.action = "mute";
    mute.textContent = "Stop notifying me from this trigger";
    more.append(mute);
  }
}

async function muteTrigger(item, button) {
  button.disabled = true;
  const response = await api("POST", `/api/notifications/${item.dataset.id}/mute_trigger/`);
  const note = document.createElement("p");
  note.className = "meta";
  if (response.ok) {
    note.textContent = "Done: this trigger will not notify you any more.";
    button.replaceWith(note);
  } else {
    button.disabled = false;
    const messages = response.status === 400 ? Object.values(response.data ?? {}).flat() : [];
    note.textContent = messages.length ? messages.join(" ") : failure(response, "Muting");
    button.after(note);
  }
  say(note.textContent);
}

inbox.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const item = button.closest("li.item");
  if (button.dataset.action === "read") markRead(item, button);
  if (button.dataset.action === "archive") archive(item, button);
  if (button.dataset.action === "mute") muteTrigger(item, button);
});

inbox.addEventListener("toggle", (event) => {
  if (event.target.matches("details.why") && event.target.open) explain(event.target);
}, true);

markAll.addEventListener("click", async () => {
  markAll.disabled = true;
  const response = await api("POST", "/api/notifications/read_all/");
  markAll.disabled = false;
  markAll.focus();
  if (!response.ok) {
    say(failure(response, "Marking all read"));
    return;
  }
  inbox.querySelectorAll("li.item.unread").forEach(markItemRead);
  setUnread(0);
  say("All notifications marked read.");
  refreshUnread({ force: true });
});

document.addEventListener("notiflow:unread", (event) => {
  if (event.detail.count > event.detail.previous) document.getElementById("new-arrivals").hidden = false;
});

function updateTimes() {
  const now = new Date();
  inbox.querySelectorAll("time[datetime]").forEach((time) => {
    time.textContent = relativeTime(new Date(time.dateTime), now);
  });
}
updateTimes();
setInterval(updateTimes, 60000);

// Opening the center counts as having seen what is in it (the badge still counts unread).
api("POST", "/api/notifications/seen_all/");
