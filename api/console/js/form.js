// Form helpers shared by the agent editor and the pipeline builder: labelled fields addressed by
// the API's error paths, and the 422 `detail[].loc` of a response marked at the field it names.
import { h } from "./app.js";

// ["body", "transforms", 1, "config", "field"] -> "transforms[1].config.field"
export function pathOf(loc) {
  let path = "";
  (loc || []).forEach((part, index) => {
    if (index === 0 && part === "body") return;
    if (typeof part === "number") path += `[${part}]`;
    else path += path ? `.${part}` : String(part);
  });
  return path;
}

// A labelled control; `control` carries data-path so errors find it.
export function field(label, control, { hint } = {}) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), control,
    hint ? h("small", { class: "muted" }, hint) : null,
    h("small", { class: "field-error", "data-error-for": control.dataset.path || "" }));
}

export function clearErrors(root) {
  for (const node of root.querySelectorAll(".invalid")) node.classList.remove("invalid");
  for (const node of root.querySelectorAll(".field-error")) node.textContent = "";
}

// Mark each error at the control whose path is the error's path or its nearest ancestor.
// Returns the errors with where they landed ("" when no control matched).
export function markErrors(root, detail) {
  clearErrors(root);
  const controls = [...root.querySelectorAll("[data-path]")];
  return (detail || []).map((error) => {
    const path = pathOf(error.loc);
    let best = null;
    for (const control of controls) {
      const candidate = control.dataset.path;
      const fits = candidate === path || path.startsWith(`${candidate}.`) || path.startsWith(`${candidate}[`) || candidate === "";
      if (fits && (!best || candidate.length > best.dataset.path.length)) best = control;
    }
    if (best && best.dataset.path !== "") {
      best.classList.add("invalid");
      // The message goes to the control's own slot: in it (containers), beside it, or its field's.
      const holder = best.querySelector(":scope > .field-error") || best.parentElement.querySelector(":scope > .field-error")
        || best.closest(".field")?.querySelector(".field-error");
      if (holder) holder.textContent = holder.textContent ? `${holder.textContent}; ${error.msg}` : error.msg;
      return { path, msg: error.msg, at: best.dataset.path };
    }
    return { path, msg: error.msg, at: "" };
  });
}

// Read and write a value inside a plain object by dotted key ("retryPolicy.maxRetries").
export function getIn(object, key) {
  return key.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), object);
}

export function setIn(object, key, value) {
  const parts = key.split(".");
  let node = object;
  for (const part of parts.slice(0, -1)) {
    if (!node[part] || typeof node[part] !== "object") node[part] = {};
    node = node[part];
  }
  const last = parts[parts.length - 1];
  if (value === undefined) {
    delete node[last];
    // Drop objects the deletion emptied, so an untouched optional block disappears again.
    if (parts.length > 1 && !Object.keys(node).length) setIn(object, parts.slice(0, -1).join("."), undefined);
  } else node[last] = value;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
