// Create and edit a trigger of any kind through /api/triggers/, with the API's errors shown
// beside their fields, and "send test" through /api/triggers/{id}/test/.
import { api, failure } from "./api.js";
import { clearErrors, showErrors, summarize } from "./forms.js";

const form = document.getElementById("trigger-form");
const summary = document.getElementById("error-summary");
const saveStatus = document.getElementById("save-status");
const triggerId = form.dataset.id;
const initial = JSON.parse(document.getElementById("trigger-initial").textContent) ?? {};
const $ = (selector) => form.querySelector(selector);

// Each channel type's target field ({label, placeholder}, or null for none), as the
// channels declare it (frontend/views.py passes notifications.channels.registry's).
const TARGETS = JSON.parse(document.getElementById("channel-targets").textContent);
const NO_VALUE = new Set(["is_set", "is_not_set"]);
const NUMERIC = new Set(["gt", "gte", "lt", "lte"]);

// --- rows -------------------------------------------------------------------------------

function addRow(listId, templateId, fill) {
  const row = document.getElementById(templateId).content.firstElementChild.cloneNode(true);
  document.getElementById(listId).append(row);
  fill?.(row);
  return row;
}

function renumber() {
  document.querySelectorAll("#filter-rows > li").forEach((row, i) => {
    const n = i + 1;
    row.dataset.path = `config.filters[${i}]`;
    for (const [name, label] of [["property", "property"], ["operator", "operator"], ["value", "value"]]) {
      const input = row.querySelector(`[name="${name}"]`);
      input.dataset.path = `config.filters[${i}].${name}`;
      input.setAttribute("aria-label", `Filter ${n} ${label}`);
    }
    row.querySelector("[data-remove]").setAttribute("aria-label", `Remove filter ${n}`);
  });
  document.querySelectorAll("#channel-rows > li").forEach((row, i) => {
    const n = i + 1;
    row.dataset.path = `channels[${i}]`;
    const type = row.querySelector('[name="type"]');
    const target = row.querySelector('[name="target"]');
    type.dataset.path = `channels[${i}].type`;
    type.setAttribute("aria-label", `Channel ${n} type`);
    target.dataset.path = `channels[${i}].target`;
    const spec = TARGETS[type.value];
    target.hidden = !spec;
    target.nextElementSibling.hidden = Boolean(spec);
    if (spec) {
      target.placeholder = spec.placeholder;
      target.setAttribute("aria-label", `Channel ${n} ${spec.label.toLowerCase()}`);
    }
    row.querySelector("[data-remove]").setAttribute("aria-label", `Remove channel ${n}`);
  });
}

function syncOperator(row) {
  const operator = row.querySelector('[name="operator"]').value;
  const value = row.querySelector('[name="value"]');
  value.disabled = NO_VALUE.has(operator);
  value.placeholder = NO_VALUE.has(operator) ? "no value needed" : operator === "in" ? "a, b, c" : operator === "regex" ? "^pattern$" : NUMERIC.has(operator) ? "number" : "value";
}

function addFilter(filter = {}) {
  return addRow("filter-rows", "filter-row", (row) => {
    row.querySelector('[name="property"]').value = filter.property ?? "";
    row.querySelector('[name="operator"]').value = filter.operator ?? "exact";
    const value = filter.value;
    row.querySelector('[name="value"]').value = Array.isArray(value) ? value.join(", ") : (value ?? "");
    syncOperator(row);
  });
}

function addChannel(channel = { type: "in_app" }) {
  return addRow("channel-rows", "channel-row", (row) => {
    row.querySelector('[name="type"]').value = channel.type;
    row.querySelector('[name="target"]').value = channel.target ?? "";
  });
}

function removeRow(button) {
  const row = button.closest("li");
  const list = row.parentElement;
  const next = row.nextElementSibling ?? row.previousElementSibling;
  row.remove();
  renumber();
  (next?.querySelector("input, select") ?? list.parentElement.querySelector("button")).focus();
}

// --- showing the fields of the chosen kind and mode --------------------------------------

function syncVisibility() {
  const kind = $("#f-kind").value;
  form.querySelectorAll("[data-kinds]").forEach((el) => { el.hidden = !el.dataset.kinds.split(" ").includes(kind); });
  const mode = form.querySelector('[name="mode"]:checked').value;
  form.querySelectorAll("[data-modes]").forEach((el) => { el.hidden = !el.dataset.modes.split(" ").includes(mode); });
  const team = $("#f-team").value;
  form.querySelectorAll("select[data-by-team] option[data-team]").forEach((option) => {
    option.hidden = option.dataset.team !== team;
    if (option.hidden && option.selected) option.parentElement.value = "";
  });
}

// --- reading the form as the API's body ---------------------------------------------------

/** A number when the text is one; the text itself otherwise (so the API names the mistake);
 *  undefined when blank. */
function number(text, { integer = false } = {}) {
  const trimmed = String(text ?? "").trim();
  if (!trimmed) return undefined;
  const value = Number(trimmed);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) return trimmed;
  return value;
}

function setIfDefined(target, key, value) {
  if (value === undefined || value === "") delete target[key];
  else target[key] = value;
}

function filterValue(operator, text) {
  if (NO_VALUE.has(operator)) return undefined;
  if (NUMERIC.has(operator)) return number(text) ?? text;
  if (operator === "in") return text.split(",").map((part) => part.trim()).filter(Boolean);
  return text;
}

/** Whether the element sits in a section of the form shown for this kind. */
function shownFor(kind, el) {
  return Boolean(el?.closest("[data-kinds]")?.dataset.kinds.split(" ").includes(kind));
}

function readConfig(kind) {
  const config = kind === initial.kind ? { ...(initial.config ?? {}) } : {};
  if (shownFor(kind, form.querySelector('[data-section="event"]'))) {
    config.event = $("#f-event").value.trim();
    config.filters = [...document.querySelectorAll("#filter-rows > li")].map((row) => {
      const operator = row.querySelector('[name="operator"]').value;
      const filter = { property: row.querySelector('[name="property"]').value.trim(), operator };
      const value = filterValue(operator, row.querySelector('[name="value"]').value);
      if (value !== undefined) filter.value = value;
      return filter;
    });
  }
  if (shownFor(kind, form.querySelector('[data-section="activity"]'))) {
    config.actions = [...form.querySelectorAll('[name="actions"]:checked')].map((el) => el.value);
    config.resource_types = [...form.querySelectorAll('[name="resource_types"]:checked')].map((el) => el.value);
  }
  // every other field is declared by its kind: data-config names the key, data-type its reading
  form.querySelectorAll("[data-config]").forEach((el) => {
    if (!shownFor(kind, el)) return;
    const type = el.dataset.type;
    setIfDefined(config, el.dataset.config, type === "choice" ? el.value : number(el.value, { integer: type === "integer" }));
  });
  return config;
}

function readBody() {
  const kind = $("#f-kind").value;
  const mode = form.querySelector('[name="mode"]:checked').value;
  const delivery = { mode };
  if (mode === "rollup") {
    setIfDefined(delivery, "window_seconds", number($("#f-window-seconds").value, { integer: true }));
    setIfDefined(delivery, "max_window_seconds", number($("#f-max-window").value, { integer: true }));
    if (initial.delivery?.mode === "rollup" && initial.delivery.max_items) delivery.max_items = initial.delivery.max_items;
  }
  const channels = [...document.querySelectorAll("#channel-rows > li")].map((row) => {
    const channel = { type: row.querySelector('[name="type"]').value };
    const target = row.querySelector('[name="target"]').value.trim();
    if (TARGETS[channel.type] && target) channel.target = target;
    return channel;
  });
  const body = { name: $("#f-name").value.trim(), kind, config: readConfig(kind), channels, delivery, enabled: $("#f-enabled").checked };
  if (!triggerId) body.team = Number($("#f-team").value);
  return body;
}

// --- filling the form from a trigger ------------------------------------------------------

function fill(trigger) {
  const config = trigger.config ?? {};
  $("#f-name").value = trigger.name ?? "";
  if (trigger.team) $("#f-team").value = String(trigger.team);
  $("#f-kind").value = trigger.kind ?? "event";
  $("#f-enabled").checked = trigger.enabled ?? true;
  $("#f-event").value = config.event ?? "";
  document.getElementById("filter-rows").replaceChildren();
  (config.filters ?? []).forEach(addFilter);
  const actions = config.actions ?? [...form.querySelectorAll('[name="actions"]')].map((el) => el.value);
  form.querySelectorAll('[name="actions"]').forEach((el) => { el.checked = actions.includes(el.value); });
  const types = config.resource_types ?? [];
  form.querySelectorAll('[name="resource_types"]').forEach((el) => { el.checked = types.includes(el.value); });
  form.querySelectorAll("[data-config]").forEach((el) => { el.value = config[el.dataset.config] ?? el.dataset.default ?? ""; });
  document.getElementById("channel-rows").replaceChildren();
  (trigger.channels?.length ? trigger.channels : [{ type: "in_app" }]).forEach(addChannel);
  const delivery = trigger.delivery ?? { mode: "instant" };
  form.querySelector(`[name="mode"][value="${delivery.mode ?? "instant"}"]`).checked = true;
  $("#f-window-seconds").value = delivery.window_seconds ?? "";
  $("#f-max-window").value = delivery.max_window_seconds ?? "";
  renumber();
  syncVisibility();
}

// --- saving -------------------------------------------------------------------------------

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  saveStatus.textContent = "Saving…";
  const body = readBody();
  const response = triggerId
    ? await api("PATCH", `/api/triggers/${triggerId}/`, { body })
    : await api("POST", "/api/triggers/", { body });
  button.disabled = false;
  saveStatus.textContent = "";
  if (response.ok) {
    clearErrors(form);
    summary.hidden = true;
    if (!triggerId) {
      window.location.assign(`/triggers/${response.data.id}/?created=1`);
      return;
    }
    Object.assign(initial, response.data);
    document.querySelector("h1").textContent = response.data.name;
    saveStatus.textContent = "Saved.";
    return;
  }
  if (response.status === 400 && response.data && typeof response.data === "object") {
    summarize(summary, showErrors(form, response.data), "The API refused the trigger.");
  } else {
    clearErrors(form);
    summarize(summary, [], failure(response, "Saving"));
  }
});

form.addEventListener("change", (event) => {
  if (event.target.matches('[name="operator"]')) syncOperator(event.target.closest("li"));
  if (event.target.matches('[name="type"]')) renumber();
  syncVisibility();
});

form.addEventListener("click", (event) => {
  const remove = event.target.closest("[data-remove]");
  if (remove) removeRow(remove);
});

document.getElementById("add-filter").addEventListener("click", () => {
  const row = addFilter();
  renumber();
  row.querySelector("input").focus();
});

document.getElementById("add-channel").addEventListener("click", () => {
  const row = addChannel({ type: "email" });
  renumber();
  row.querySelector("select").focus();
});

// --- delete and test (edit page only) -----------------------------------------------------

document.getElementById("delete-trigger")?.addEventListener("click", async () => {
  if (!window.confirm(`Delete the trigger “${initial.name}”? This cannot be undone.`)) return;
  const response = await api("DELETE", `/api/triggers/${triggerId}/`);
  if (response.ok) {
    window.location.assign(`/triggers/?deleted=${encodeURIComponent(initial.name)}`);
  } else {
    summarize(summary, [], failure(response, "Deleting"));
  }
});

const testSection = document.querySelector("section.test");
if (testSection) {
  const sample = document.getElementById("sample");
  const result = document.getElementById("test-result");
  sample.value = JSON.stringify({ event: initial.config?.event ?? "", properties: {} }, null, 2);
  document.getElementById("send-test").addEventListener("click", async () => {
    clearErrors(testSection);
    result.className = "";
    result.textContent = "";
    let body;
    try {
      body = JSON.parse(sample.value);
    } catch (error) {
      showErrors(testSection, { event: [`Not valid JSON: ${error.message}`] }, { attr: "data-test-path" });
      return;
    }
    const response = await api("POST", `/api/triggers/${triggerId}/test/`, { body });
    if (response.ok && Array.isArray(response.data)) {
      const matched = response.data.filter((r) => r.matches).length;
      if (response.data.length === 1) {
        result.textContent = matched ? "✓ Matched" : "✗ Not matched";
      } else {
        result.textContent = `${matched} of ${response.data.length} events matched: ` + response.data.map((r) => `#${r.index + 1} ${r.matches ? "matched" : "not matched"}`).join(", ");
      }
      result.className = matched ? "result matched" : "result unmatched";
      return;
    }
    if (response.status === 400 && response.data) {
      // every error of the sample belongs to the one textarea
      const messages = Object.entries(response.data).map(([path, m]) => `${path}: ${[].concat(m).join(" ")}`);
      showErrors(testSection, { event: messages }, { attr: "data-test-path" });
    } else {
      result.textContent = failure(response, "The test");
      result.className = "result unmatched";
    }
  });
}

if (triggerId) {
  fill(initial);
} else {
  addChannel({ type: "in_app" });
  renumber();
  syncVisibility();
}
form.dataset.ready = "true";
