// Preferences through GET/PUT /api/preferences/, and "my deliveries" from /api/deliveries/.
import { api, failure, relativeTime, results } from "./api.js";
import { clearErrors, showErrors, summarize } from "./forms.js";

const form = document.getElementById("preferences-form");
const summary = document.getElementById("error-summary");
const saveStatus = document.getElementById("save-status");
const grid = document.getElementById("channel-grid");
const $ = (selector) => form.querySelector(selector);
const CATEGORIES = JSON.parse(document.getElementById("pref-categories").textContent);
const CHANNEL_LABELS = new Map(JSON.parse(document.getElementById("pref-channels").textContent));
// Channels a person has without any organization setup: the columns of an empty grid.
const PERSONAL_CHANNELS = JSON.parse(document.getElementById("pref-personal-channels").textContent);

// --- reading the API's shape --------------------------------------------------------------

function isOn(value) {
  if (value === undefined || value === null) return true;
  if (typeof value === "object") return Boolean(value.enabled ?? value.on ?? value.value ?? true);
  return Boolean(value);
}

/** Which cells cannot be turned off, as "category" (every channel) or "category:channel".
 *  Read from whichever of the documented hints the API sends. */
function lockedCells(data) {
  const locked = new Set();
  const add = (entry) => {
    if (typeof entry === "string") locked.add(entry);
    else if (entry?.category) locked.add(entry.channel ? `${entry.category}:${entry.channel}` : entry.category);
  };
  for (const key of ["critical_categories", "critical", "locked"]) {
    const hint = data[key];
    if (Array.isArray(hint)) hint.forEach(add);
    else if (hint && typeof hint === "object") {
      for (const [category, value] of Object.entries(hint)) {
        if (value === true) locked.add(category);
        else if (Array.isArray(value)) value.forEach((channel) => locked.add(`${category}:${channel}`));
      }
    }
  }
  if (Array.isArray(data.categories)) {
    data.categories.forEach((c) => { if (c?.critical) locked.add(c.key ?? c.value ?? c.id ?? c.name); });
  }
  for (const [category, channels] of Object.entries(data.channels ?? {})) {
    for (const [channel, value] of Object.entries(channels ?? {})) {
      if (value && typeof value === "object" && (value.critical || value.locked)) locked.add(`${category}:${channel}`);
    }
  }
  return locked;
}

function categoryLabels(data) {
  const labels = new Map(CATEGORIES);
  if (Array.isArray(data.categories)) {
    data.categories.forEach((c) => {
      const key = c?.key ?? c?.value ?? c?.id ?? c?.name;
      if (key) labels.set(key, c.label ?? labels.get(key) ?? key);
    });
  }
  Object.keys(data.channels ?? {}).forEach((key) => {
    if (!labels.has(key)) labels.set(key, key.charAt(0).toUpperCase() + key.slice(1).replace(/[-_]/g, " "));
  });
  // rows the API does not have are not shown (a category it does not know would be refused)
  if (data.channels) [...labels.keys()].forEach((key) => { if (!(key in data.channels)) labels.delete(key); });
  return labels;
}

// --- the grid -----------------------------------------------------------------------------

function renderGrid(data) {
  const labels = categoryLabels(data);
  const rows = data.channels ?? {};
  // columns: every channel any row has, in the order the API lists them
  const columns = [...new Set(Object.values(rows).flatMap((byChannel) => Object.keys(byChannel ?? {})))];
  if (!columns.length) columns.push(...PERSONAL_CHANNELS);
  const locked = lockedCells(data);

  const head = grid.querySelector("thead tr");
  head.replaceChildren(head.firstElementChild);
  for (const channel of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = CHANNEL_LABELS.get(channel) ?? channel;
    head.append(th);
  }
  const body = grid.querySelector("tbody");
  body.replaceChildren();
  for (const [category, label] of labels) {
    const row = document.createElement("tr");
    row.dataset.path = `channels.${category}`;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    const has = (channel) => !rows[category] || channel in rows[category];
    const isLocked = (channel) => locked.has(category) || locked.has(`${category}:${channel}`);
    const lockedHere = columns.filter((channel) => has(channel) && isLocked(channel));
    if (lockedHere.length) {
      const note = document.createElement("span");
      note.className = "note";
      note.id = `critical-${category}`;
      const names = lockedHere.map((channel) => CHANNEL_LABELS.get(channel) ?? channel).join(", ");
      note.textContent = `Critical: ${names} can't be turned off`;
      th.append(note);
    }
    row.append(th);
    for (const channel of columns) {
      const cell = document.createElement("td");
      if (!has(channel)) {
        cell.append(Object.assign(document.createElement("span"), { className: "meta", textContent: "—", title: "Not available" }));
        row.append(cell);
        continue;
      }
      const box = document.createElement("input");
      box.type = "checkbox";
      box.dataset.category = category;
      box.dataset.channel = channel;
      box.dataset.path = `channels.${category}.${channel}`;
      box.setAttribute("aria-label", `${label} by ${CHANNEL_LABELS.get(channel) ?? channel}`);
      box.checked = isLocked(channel) || isOn(rows[category]?.[channel]);
      if (isLocked(channel)) {
        box.disabled = true;
        box.dataset.locked = "true";
        box.setAttribute("aria-describedby", `critical-${category}`);
      }
      cell.append(box);
      row.append(cell);
    }
    body.append(row);
  }
}

// --- the rest of the form -----------------------------------------------------------------

function ensureOption(select, value) {
  if (value === null || value === undefined || value === "") return;
  if (![...select.options].some((o) => o.value === String(value))) select.add(new Option(String(value), String(value)), 0);
  select.value = String(value);
}

function hhmm(value) {
  return value ? String(value).slice(0, 5) : "";
}

function showNextDigest(data) {
  const line = document.getElementById("next-digest");
  if (data.digest_cadence === "off") {
    line.textContent = "Digests are off.";
    return;
  }
  if (!data.next_digest_at) {
    line.textContent = "";
    return;
  }
  const when = new Date(data.next_digest_at);
  let text;
  try {
    text = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit", timeZone: data.timezone || undefined }).format(when);
  } catch {
    text = when.toLocaleString();
  }
  line.textContent = `Next digest: ${text}${data.timezone ? ` (${data.timezone})` : ""}, ${relativeTime(when)}.`;
}

function fill(data) {
  renderGrid(data);
  ensureOption($("#p-cadence"), data.digest_cadence);
  ensureOption($("#p-hour"), data.digest_hour);
  ensureOption($("#p-timezone"), data.timezone);
  $("#p-quiet-start").value = hhmm(data.quiet_hours_start);
  $("#p-quiet-end").value = hhmm(data.quiet_hours_end);
  const muted = new Set((data.muted_teams ?? []).map((t) => String(t?.id ?? t)));
  form.querySelectorAll('[name="muted_teams"]').forEach((box) => { box.checked = muted.has(box.value); });
  const critical = new Set(data.critical_categories ?? []);
  form.querySelectorAll('[name="critical_categories"]').forEach((box) => { box.checked = critical.has(box.value); });
  showNextDigest(data);
}

function readBody() {
  const channels = {};
  grid.querySelectorAll("input[data-category]").forEach((box) => {
    (channels[box.dataset.category] ??= {})[box.dataset.channel] = box.checked;
  });
  return {
    channels,
    digest_cadence: $("#p-cadence").value,
    digest_hour: Number($("#p-hour").value),
    timezone: $("#p-timezone").value,
    quiet_hours_start: $("#p-quiet-start").value || null,
    quiet_hours_end: $("#p-quiet-end").value || null,
    muted_teams: [...form.querySelectorAll('[name="muted_teams"]:checked')].map((box) => Number(box.value)),
    critical_categories: [...form.querySelectorAll('[name="critical_categories"]:checked')].map((box) => box.value),
  };
}

async function load() {
  const response = await api("GET", "/api/preferences/");
  form.removeAttribute("aria-busy");
  if (!response.ok || !response.data) {
    summarize(summary, [], failure(response, "Loading your preferences"));
    return;
  }
  fill(response.data);
  form.querySelector('button[type="submit"]').disabled = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  saveStatus.textContent = "Saving…";
  const response = await api("PUT", "/api/preferences/", { body: readBody() });
  button.disabled = false;
  saveStatus.textContent = "";
  if (response.ok) {
    clearErrors(form);
    summary.hidden = true;
    if (response.data) fill(response.data);
    saveStatus.textContent = "Saved.";
    return;
  }
  if (response.status === 400 && response.data && typeof response.data === "object") {
    summarize(summary, showErrors(form, response.data), "The API refused these preferences.");
  } else {
    clearErrors(form);
    summarize(summary, [], failure(response, "Saving"));
  }
});

// --- my deliveries ------------------------------------------------------------------------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

async function loadDeliveries() {
  const box = document.getElementById("deliveries");
  const response = await api("GET", "/api/deliveries/");
  if (!response.ok) {
    box.innerHTML = "";
    box.append(Object.assign(document.createElement("p"), { className: "meta", textContent: failure(response, "Loading deliveries") }));
    return;
  }
  const deliveries = results(response.data).slice(0, 20);
  if (!deliveries.length) {
    box.replaceChildren(Object.assign(document.createElement("p"), { className: "meta", textContent: "Nothing has been delivered to you or by your triggers yet." }));
    return;
  }
  const table = document.createElement("table");
  table.className = "table";
  table.innerHTML = '<thead><tr><th scope="col">When</th><th scope="col">What</th><th scope="col">Channel</th><th scope="col">Status</th><th scope="col">Reason</th></tr></thead><tbody></tbody>';
  for (const d of deliveries) {
    const row = document.createElement("tr");
    const at = d.sent_at ?? d.updated_at ?? d.created_at;
    const when = cell(at ? relativeTime(new Date(at)) : "", "nowrap");
    if (at) when.title = new Date(at).toLocaleString();
    const status = document.createElement("td");
    status.append(Object.assign(document.createElement("span"), { className: `pill ${d.status}`, textContent: d.status }));
    const what = d.title ?? d.message?.title ?? d.notification_title ?? d.trigger_name ?? "";
    const channel = [d.channel, d.destination].filter(Boolean).join(" · ");
    const reason = d.reason || d.last_error || (d.attempts > 1 ? `${d.attempts} attempts` : "");
    row.append(when, cell(what), cell(channel, "meta"), status, cell(reason, "meta"));
    table.tBodies[0].append(row);
  }
  box.replaceChildren(Object.assign(document.createElement("div"), { className: "table-wrap" }));
  box.firstChild.append(table);
}

load();
loadDeliveries();
