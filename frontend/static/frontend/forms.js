// Showing the API's flat validation errors ({"config.filters[0].value": ["…"]}) beside the
// inputs that carry the same path in data-path, with a linked summary at the top.

/** "config.filters[0].value" → "config.filters[0]" → "config.filters" → "config" → null */
export function parentPath(path) {
  const cut = path.match(/^(.*)(\.[^.[\]]+|\[\d+\])$/);
  return cut ? cut[1] : null;
}

let serial = 0;

export function clearErrors(root) {
  root.querySelectorAll(".field-error").forEach((el) => el.remove());
  root.querySelectorAll("[aria-invalid]").forEach((el) => {
    el.removeAttribute("aria-invalid");
    el.removeAttribute("aria-describedby");
  });
  root.querySelectorAll(".has-error").forEach((el) => el.classList.remove("has-error"));
}

function place(target, messages) {
  const error = document.createElement("p");
  error.className = "field-error";
  error.id = `error-${++serial}`;
  error.textContent = messages.join(" ");
  if (target.matches("input, select, textarea")) {
    const anchor = target.closest("label.check") ?? target;
    anchor.after(error);
    target.setAttribute("aria-invalid", "true");
    target.setAttribute("aria-describedby", error.id);
  } else {
    target.append(error);
    target.classList.add("has-error");
  }
  return error;
}

/** Put each error beside its field (or the closest enclosing one). Returns
 *  [{path, message, target}] so the caller can list them; target is null when nothing on
 *  the page carries the path or a parent of it. */
export function showErrors(root, errors, { attr = "data-path" } = {}) {
  clearErrors(root);
  const shown = [];
  for (const [path, raw] of Object.entries(errors || {})) {
    const messages = (Array.isArray(raw) ? raw : [raw]).map((m) => (typeof m === "string" ? m : JSON.stringify(m)));
    let target = null;
    for (let p = path; p && !target; p = parentPath(p)) {
      target = [...root.querySelectorAll(`[${attr}]`)].find((el) => el.getAttribute(attr) === p && !el.closest("[hidden]"));
    }
    const error = target ? place(target, messages) : null;
    shown.push({ path, message: messages.join(" "), target, error });
  }
  return shown;
}

/** Fill a summary box (<div><h2/><ul/></div>) with links to each shown error, and focus it. */
export function summarize(summary, shown, fallback) {
  const list = summary.querySelector("ul");
  list.replaceChildren();
  const items = shown.length ? shown : [{ path: "", message: fallback, target: null }];
  for (const { path, message, target } of items) {
    const li = document.createElement("li");
    if (target) {
      const link = document.createElement("a");
      const focusable = target.matches("input, select, textarea") ? target : target.querySelector("input, select, textarea, button");
      link.href = "#";
      link.textContent = `${humanPath(path)}: ${message}`;
      link.addEventListener("click", (e) => { e.preventDefault(); (focusable ?? target).focus(); });
      li.append(link);
    } else {
      li.textContent = path && path !== "non_field_errors" ? `${humanPath(path)}: ${message}` : message;
    }
    list.append(li);
  }
  summary.hidden = false;
  summary.focus();
}

/** "config.filters[0].value" → "Filter 1 value" and the like, for the summary. */
export function humanPath(path) {
  const known = { name: "Name", team: "Team", kind: "Kind", "config.event": "Event name", "config.count": "Count", "config.window_minutes": "Window (minutes)", "delivery.window_seconds": "Roll-up window", "delivery.max_window_seconds": "Stretch up to", "delivery.mode": "Delivery mode" };
  if (known[path]) return known[path];
  return path
    .replace(/^config\.filters\[(\d+)\]\.?/, (_, i) => `Filter ${Number(i) + 1} `)
    .replace(/^channels\[(\d+)\]\.?/, (_, i) => `Channel ${Number(i) + 1} `)
    .replace(/^config\./, "")
    .replace(/[._]/g, " ")
    .trim();
}
