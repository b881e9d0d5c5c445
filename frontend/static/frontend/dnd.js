// The header's do-not-disturb control: presets, a picked time (read in the user's zone by
// the API), and off. The header text follows the API's answer.
import { api } from "./api.js";

const root = document.getElementById("dnd");
if (root) {
  const state = document.getElementById("dnd-state");
  const error = document.getElementById("dnd-error");
  const off = root.querySelector("[data-off]");

  const show = (data) => {
    const on = Boolean(data.dnd_until);
    state.textContent = on ? `Do not disturb ${data.label}` : "Do not disturb";
    root.toggleAttribute("data-on", on);
    off.hidden = !on;
    error.textContent = "";
    root.open = false;
  };

  const send = async (method, body) => {
    const response = await api(method, "/api/preferences/dnd/", { body });
    if (response.ok) {
      show(response.data);
      return;
    }
    const messages = Object.values(response.data || {}).flat();
    error.textContent = messages.length ? messages.join(" ") : "Do not disturb could not be changed.";
  };

  root.querySelectorAll("[data-preset]").forEach((button) =>
    button.addEventListener("click", () => send("PUT", { preset: button.dataset.preset })),
  );
  root.querySelector("[data-pick]").addEventListener("click", () => {
    const value = document.getElementById("dnd-until").value;
    if (!value) {
      error.textContent = "Pick a day and time first.";
      return;
    }
    send("PUT", { until: value });
  });
  off.addEventListener("click", () => send("DELETE"));
}
