// The pipeline builder: a form for source / transforms / destination / options, and the same
// body as JSON. Both views edit one object, so they stay in sync. Every change is checked by
// the API (POST /api/console/pipelines/validate) and its 422 paths are marked at their fields.
import { ApiError, post, put } from "./api.js";
import { h } from "./app.js";
import { clearErrors, debounce, field, getIn, markErrors, setIn } from "./form.js";

const AGENT_EVENTS = ["run:started", "run:status_changed", "run:completed", "run:error", "run:progress",
  "run:tool_started", "run:tool_completed", "run:llm_call", "run:memory_op"];
const FUNCTIONS = ["sum", "avg", "count", "min", "max"];

// Field descriptors: key (dotted inside the section), label, kind, options, when(config).
const SOURCES = {
  webhook: [{ key: "secret", label: "Signing secret", kind: "text", placeholder: "${secrets.HOOK_SECRET} (optional)" }],
  agent_execution: [
    { key: "agentIds", label: "Agent ids (comma-separated, empty: all)", kind: "list" },
    { key: "eventTypes", label: "Event types (default run:status_changed)", kind: "checks", options: AGENT_EVENTS },
  ],
  database_change: [
    { key: "table", label: "Table", kind: "text" },
    { key: "operations", label: "Operations (default all)", kind: "checks", options: ["insert", "update", "delete"] },
    { key: "connection", label: "Connection (secret reference)", kind: "text", placeholder: "platform database" },
  ],
  api_event: [
    { key: "paths", label: "Paths (globs, comma-separated)", kind: "list", placeholder: "/api/agents, /api/streaming/*" },
    { key: "methods", label: "Methods (default all)", kind: "checks", options: ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] },
  ],
  schedule: [
    { key: "cron", label: "Cron (UTC)", kind: "text", placeholder: "0 3 * * *" },
    { key: "intervalMs", label: "…or every (ms)", kind: "number" },
    { key: "payload", label: "Payload (JSON object)", kind: "json" },
  ],
};

const WINDOW_IS = (...types) => (config) => types.includes(config.type || "tumbling");
const TRANSFORMS = {
  filter: {
    init: { field: "", operator: "eq", value: "" },
    fields: [
      { key: "field", label: "Field", kind: "text", placeholder: "status" },
      { key: "operator", label: "Operator", kind: "select", options: ["eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "regex"] },
      { key: "value", label: "Value (text, or JSON)", kind: "value" },
    ],
  },
  map: { init: { expression: { "": "" } }, fields: [{ key: "expression", label: "Output fields", kind: "pairs" }] },
  aggregate: {
    init: { groupBy: [], aggregations: [{ field: "*", function: "count" }] },
    fields: [
      { key: "groupBy", label: "Group by (comma-separated)", kind: "list" },
      { key: "aggregations", label: "Aggregations", kind: "aggs" },
      { key: "maxGroups", label: "Max groups", kind: "number" },
    ],
  },
  window: {
    init: { type: "tumbling", size: 60000, aggregations: [{ field: "*", function: "count" }] },
    fields: [
      { key: "type", label: "Window", kind: "select", options: ["tumbling", "sliding", "session"], structural: true },
      { key: "size", label: "Size (ms)", kind: "number", when: WINDOW_IS("tumbling", "sliding") },
      { key: "slide", label: "Slide (ms)", kind: "number", when: WINDOW_IS("sliding") },
      { key: "gap", label: "Gap (ms)", kind: "number", when: WINDOW_IS("session") },
      { key: "groupBy", label: "Group by (comma-separated)", kind: "list" },
      { key: "aggregations", label: "Aggregations", kind: "aggs" },
      { key: "timeField", label: "Event-time field (empty: processing time)", kind: "text" },
      { key: "allowedLatenessMs", label: "Allowed lateness (ms)", kind: "number" },
      { key: "maxOpenWindows", label: "Max open windows", kind: "number" },
    ],
  },
  batch: {
    init: { size: 100, timeout: 5000 },
    fields: [{ key: "size", label: "Size", kind: "number" }, { key: "timeout", label: "Timeout (ms)", kind: "number" }],
  },
};

const RETRY = [
  { key: "retryPolicy.maxRetries", label: "Max retries", kind: "number" },
  { key: "retryPolicy.backoffMs", label: "Backoff (ms)", kind: "number" },
];
const PROVIDER_IS = (...providers) => (config) => providers.includes(config.provider);
const CHANNEL_IS = (channel) => (config) => (config.channel || "slack") === channel;
const DESTINATIONS = {
  webhook: {
    init: { url: "", method: "POST" },
    fields: [
      { key: "url", label: "URL", kind: "text", placeholder: "https://example.com/hook" },
      { key: "method", label: "Method", kind: "select", options: ["POST", "PUT", "PATCH"] },
      { key: "headers", label: "Headers (JSON object)", kind: "json" },
      { key: "signingSecret", label: "Signing secret", kind: "text", placeholder: "${secrets.NAME} (optional)" },
      ...RETRY,
    ],
  },
  database: {
    init: { table: "", operation: "insert" },
    fields: [
      { key: "table", label: "Table", kind: "text" },
      { key: "operation", label: "Operation", kind: "select", options: ["insert", "upsert", "update"] },
      { key: "conflictFields", label: "Conflict fields (comma-separated)", kind: "list" },
      { key: "connection", label: "Connection (secret reference)", kind: "text", placeholder: "platform database" },
      ...RETRY,
    ],
  },
  analytics: {
    init: { provider: "segment" },
    fields: [
      { key: "provider", label: "Provider", kind: "select", options: ["segment", "mixpanel", "amplitude", "custom"], structural: true },
      { key: "writeKey", label: "Write key", kind: "text", when: PROVIDER_IS("segment") },
      { key: "projectToken", label: "Project token", kind: "text", when: PROVIDER_IS("mixpanel") },
      { key: "apiKey", label: "API key", kind: "text", when: PROVIDER_IS("amplitude") },
      { key: "url", label: "URL", kind: "text", when: PROVIDER_IS("custom") },
      { key: "headers", label: "Headers (JSON object)", kind: "json", when: PROVIDER_IS("custom") },
      { key: "baseUrl", label: "Base URL", kind: "text", when: PROVIDER_IS("segment", "mixpanel", "amplitude") },
      { key: "eventName", label: "Event name", kind: "text" },
      { key: "eventField", label: "Event name field", kind: "text" },
      { key: "distinctIdField", label: "User id field", kind: "text" },
      { key: "timeField", label: "Time field", kind: "text" },
    ],
  },
  notification: {
    init: { channel: "slack" },
    fields: [
      { key: "channel", label: "Channel", kind: "select", options: ["slack", "webhook"], structural: true },
      { key: "webhook", label: "Slack webhook URL", kind: "text", placeholder: "${secrets.SLACK_WEBHOOK}", when: CHANNEL_IS("slack") },
      { key: "url", label: "URL", kind: "text", when: CHANNEL_IS("webhook") },
      { key: "headers", label: "Headers (JSON object)", kind: "json", when: CHANNEL_IS("webhook") },
      { key: "template", label: "Template ({{field}} placeholders)", kind: "textarea" },
      { key: "maxMessages", label: "Max messages per batch", kind: "number" },
    ],
  },
};
const OPTIONS = [
  { key: "batchSize", label: "Batch size", kind: "number" },
  { key: "maxPending", label: "Max pending", kind: "number" },
  { key: "maxWaitMs", label: "Max wait (ms)", kind: "number" },
  { key: "retentionHours", label: "Retention (hours)", kind: "number" },
];

export const EXAMPLE = {
  name: "orders-to-webhook",
  source: { type: "webhook" },
  transforms: [
    { type: "filter", config: { field: "status", operator: "eq", value: "paid" } },
    { type: "map", config: { expression: { orderId: "id", customer: "upper(customer.name)", total: "toNumber(total)" } } },
  ],
  destination: { type: "webhook", config: { url: "https://example.com/hook", method: "POST", retryPolicy: { maxRetries: 3, backoffMs: 1000 } } },
  options: { batchSize: 500 },
};

const clone = (value) => JSON.parse(JSON.stringify(value));
const isObject = (value) => value && typeof value === "object" && !Array.isArray(value);

// Show a filter value as typed: strings as themselves unless they would read back as JSON.
function valueText(value) {
  if (value === undefined) return "";
  if (typeof value !== "string") return JSON.stringify(value);
  try { JSON.parse(value); return JSON.stringify(value); } catch { return value; }
}
function parseValue(text) {
  if (text === "") return undefined;
  try { return JSON.parse(text); } catch { return text; }
}

// Render a JSON value as indented lines, marking the line of every path that has an error.
function annotatedTree(value, errors) {
  const byPath = new Map(errors.map((e) => { const i = e.indexOf(": "); return [e.slice(0, i), e.slice(i + 2)]; }));
  const lines = [];
  const walk = (node, path, key, depth) => {
    const label = key === null ? "" : `${key}: `;
    const isObj = node && typeof node === "object";
    lines.push(h("div", { style: `padding-left:${depth * 16}px`, "data-path": path, class: byPath.has(path) ? "error" : "" },
      label, isObj ? (Array.isArray(node) ? "[" : "{") : JSON.stringify(node),
      byPath.has(path) ? h("b", {}, `  ← ${byPath.get(path)}`) : ""));
    if (isObj) {
      for (const [k, v] of Object.entries(node)) {
        const child = Array.isArray(node) ? `${path}[${k}]` : (path ? `${path}.${k}` : k);
        walk(v, child, Array.isArray(node) ? `[${k}]` : k, depth + 1);
      }
    }
  };
  walk(value, "", null, 0);
  const unplaced = [...byPath.entries()].filter(([p]) => !lines.some((l) => l.dataset.path === p));
  return h("div", { class: "log", id: "pl-errors" }, ...lines, ...unplaced.map(([p, m]) => h("div", { class: "error" }, `${p || "(body)"}: ${m}`)));
}

export function pipelineBuilder({ onSaved }) {
  let body = clone(EXAMPLE);
  let editing = null; // the id of the pipeline being edited, or null for a new one
  let view = "form";
  let checks = 0; // the latest validation wins

  const title = h("h3", { style: "flex:1" }, "New pipeline");
  const formTab = h("button", { type: "button", id: "pl-tab-form", class: "active", onclick: () => show("form") }, "Form");
  const jsonTab = h("button", { type: "button", id: "pl-tab-json", onclick: () => show("json") }, "JSON");
  const form = h("div", { class: "form", id: "pl-form" });
  const editor = h("textarea", { id: "pl-json", rows: 18, spellcheck: "false" });
  const jsonErrors = h("div", { id: "pl-json-errors" });
  const jsonView = h("div", { id: "pl-json-view", hidden: true }, editor, jsonErrors);
  const validity = h("p", { id: "pl-validity", class: "muted", role: "status" });
  const createButton = h("button", { id: "pl-create", type: "button", onclick: () => save() }, "Create");
  const newButton = h("button", { id: "pl-new", type: "button", class: "secondary", onclick: () => load(null) }, "New");
  const result = h("div", { id: "pl-create-result" });
  const root = h("div", { class: "card", id: "pl-builder" },
    h("div", { class: "row" }, title, h("div", { class: "tabs" }, formTab, jsonTab)),
    form, jsonView, validity, h("div", { class: "row" }, createButton, newButton), result);

  function show(which) {
    view = which;
    formTab.classList.toggle("active", which === "form");
    jsonTab.classList.toggle("active", which === "json");
    form.hidden = which !== "form";
    jsonView.hidden = which !== "json";
  }

  // A value changed in the form: the JSON follows, then the API checks the body.
  function changed({ rerender = false } = {}) {
    editor.value = JSON.stringify(body, null, 2);
    if (rerender) renderForm();
    validateSoon();
  }

  function control(desc, section, base) {
    const path = `${base}.${desc.key}`;
    const current = getIn(section, desc.key);
    const setValue = (value, rerender = false) => { setIn(section, desc.key, value); changed({ rerender }); };
    const attrs = { "data-path": path, placeholder: desc.placeholder || "" };
    let node;
    switch (desc.kind) {
      case "number":
        node = h("input", { ...attrs, type: "number", value: current ?? "" });
        node.addEventListener("input", () => setValue(node.value === "" ? undefined : Number(node.value)));
        break;
      case "select":
        node = h("select", attrs, ...desc.options.map((o) => h("option", { value: o, selected: o === current }, o)));
        if (current === undefined) node.value = desc.options[0];
        node.addEventListener("change", () => setValue(node.value, Boolean(desc.structural)));
        break;
      case "list":
        node = h("input", { ...attrs, value: Array.isArray(current) ? current.join(", ") : current ?? "" });
        node.addEventListener("input", () => {
          const items = node.value.split(",").map((s) => s.trim()).filter(Boolean);
          setValue(items.length ? items : undefined);
        });
        break;
      case "checks": {
        const chosen = new Set(Array.isArray(current) ? current : []);
        node = h("div", { ...attrs, class: "checks" }, ...desc.options.map((o) => {
          const box = h("input", { type: "checkbox", value: o, checked: chosen.has(o) });
          box.addEventListener("change", () => {
            const picked = [...node.querySelectorAll("input:checked")].map((b) => b.value);
            setValue(picked.length ? picked : undefined);
          });
          return h("label", { class: "check" }, box, ` ${o}`);
        }));
        break;
      }
      case "json":
        node = h("textarea", { ...attrs, rows: 2 }, current === undefined ? "" : JSON.stringify(current));
        node.addEventListener("input", () => {
          if (node.value.trim() === "") return setValue(undefined);
          try { setValue(JSON.parse(node.value)); } catch {
            node.classList.add("invalid");
            node.closest(".field").querySelector(".field-error").textContent = "not valid JSON";
          }
        });
        break;
      case "textarea":
        node = h("textarea", { ...attrs, rows: 2 }, current ?? "");
        node.addEventListener("input", () => setValue(node.value === "" ? undefined : node.value));
        break;
      case "value":
        node = h("input", { ...attrs, value: valueText(current) });
        node.addEventListener("input", () => setValue(parseValue(node.value)));
        break;
      case "pairs":
        return pairs(desc, section, path);
      case "aggs":
        return aggregations(desc, section, path);
      default:
        node = h("input", { ...attrs, value: current ?? "" });
        node.addEventListener("input", () => setValue(node.value === "" ? undefined : node.value));
    }
    return field(desc.label, node);
  }

  // map's expression: an ordered object of output field -> expression.
  function pairs(desc, section, path) {
    const entries = Object.entries(isObject(section[desc.key]) ? section[desc.key] : {});
    const write = (rerender = false) => {
      section[desc.key] = Object.fromEntries(entries.map(([k, v]) => [k, v]));
      changed({ rerender });
    };
    const rows = entries.map((entry, index) => {
      // Only the expression carries the path: an error about this output field is marked there.
      const name = h("input", { value: entry[0], placeholder: "output field", "data-role": "name" });
      const expression = h("input", { value: typeof entry[1] === "string" ? entry[1] : JSON.stringify(entry[1]), placeholder: "expression, e.g. upper(user.name)", "data-path": `${path}.${entry[0]}`, "data-role": "expression" });
      name.addEventListener("input", () => {
        entry[0] = name.value;
        expression.dataset.path = `${path}.${name.value}`;
        write();
      });
      expression.addEventListener("input", () => { entry[1] = expression.value; write(); });
      return h("div", { class: "pair" }, name, h("div", {}, expression, h("small", { class: "field-error" })),
        h("button", { type: "button", class: "secondary", title: "remove", onclick: () => { entries.splice(index, 1); write(true); } }, "×"));
    });
    return h("div", { class: "field wide" }, h("span", { class: "field-label" }, desc.label),
      h("div", { class: "pairs", "data-path": path }, ...rows,
        h("div", {}, h("button", { type: "button", class: "secondary", "data-action": "add-field", onclick: () => { entries.push(["", ""]); write(true); } }, "+ field"))),
      h("small", { class: "field-error" }));
  }

  // aggregate/window aggregations: [{field, function, alias?}].
  function aggregations(desc, section, path) {
    const items = Array.isArray(section[desc.key]) ? section[desc.key] : [];
    const write = (rerender = false) => { section[desc.key] = items; changed({ rerender }); };
    const rows = items.map((item, index) => {
      const at = `${path}[${index}]`;
      const fieldInput = h("input", { value: item.field ?? "", placeholder: "field or *", "data-path": `${at}.field` });
      const fn = h("select", { "data-path": `${at}.function` }, ...FUNCTIONS.map((f) => h("option", { value: f, selected: f === item.function }, f)));
      const alias = h("input", { value: item.alias ?? "", placeholder: "alias (optional)", "data-path": `${at}.alias` });
      fieldInput.addEventListener("input", () => { item.field = fieldInput.value; write(); });
      fn.addEventListener("change", () => { item.function = fn.value; write(); });
      alias.addEventListener("input", () => { if (alias.value) item.alias = alias.value; else delete item.alias; write(); });
      const cell = (node) => h("div", { "data-path": at }, node, h("small", { class: "field-error" }));
      return h("div", { class: "pair agg" }, cell(fieldInput), cell(fn), cell(alias),
        h("button", { type: "button", class: "secondary", title: "remove", onclick: () => { items.splice(index, 1); write(true); } }, "×"));
    });
    return h("div", { class: "field wide" }, h("span", { class: "field-label" }, desc.label),
      h("div", { class: "pairs", "data-path": path }, ...rows,
        h("div", {}, h("button", { type: "button", class: "secondary", onclick: () => { items.push({ field: "*", function: "count" }); write(true); } }, "+ aggregation"))),
      h("small", { class: "field-error" }));
  }

  const typeSelect = (path, types, current, onPick) => {
    const node = h("select", { "data-path": path }, ...types.map((t) => h("option", { value: t, selected: t === current }, t)));
    if (!types.includes(current)) node.prepend(h("option", { value: current, selected: true }, String(current)));
    node.addEventListener("change", () => onPick(node.value));
    return node;
  };
  const visible = (descs, config) => descs.filter((d) => !d.when || d.when(config));

  function renderForm() {
    if (!isObject(body.source)) body.source = { type: "webhook" };
    if (!Array.isArray(body.transforms)) body.transforms = [];
    if (!isObject(body.destination)) body.destination = { type: "webhook", config: {} };
    if (!isObject(body.destination.config)) body.destination.config = {};
    if (!isObject(body.options)) body.options = {};
    const source = body.source;
    const destination = body.destination;

    const name = h("input", { id: "pl-name", "data-path": "name", value: body.name ?? "" });
    name.addEventListener("input", () => { body.name = name.value; changed(); });

    const sourceBox = h("fieldset", { class: "step-card", "data-path": "source" },
      h("legend", {}, "Source"),
      field("Type", typeSelect("source.type", Object.keys(SOURCES), source.type, (type) => { body.source = { type }; changed({ rerender: true }); })),
      h("div", { class: "fields" }, ...(SOURCES[source.type] || []).map((d) => control(d, source, "source"))),
      h("small", { class: "field-error" }));

    const steps = body.transforms.map((step, index) => {
      if (!isObject(step.config)) step.config = {};
      const spec = TRANSFORMS[step.type];
      const base = `transforms[${index}]`;
      const move = (by) => {
        const [item] = body.transforms.splice(index, 1);
        body.transforms.splice(index + by, 0, item);
        changed({ rerender: true });
      };
      return h("div", { class: "step-card", "data-path": base, "data-transform": step.type },
        h("div", { class: "row" }, h("b", {}, `${index + 1}.`),
          h("button", { type: "button", class: "secondary", title: "move up", disabled: index === 0, onclick: () => move(-1) }, "↑"),
          h("button", { type: "button", class: "secondary", title: "move down", disabled: index === body.transforms.length - 1, onclick: () => move(1) }, "↓"),
          h("button", { type: "button", class: "secondary", "data-action": "remove-transform", onclick: () => { body.transforms.splice(index, 1); changed({ rerender: true }); } }, "Remove")),
        field("Transform", typeSelect(`${base}.type`, Object.keys(TRANSFORMS), step.type, (type) => {
          body.transforms[index] = { type, config: clone(TRANSFORMS[type].init) };
          changed({ rerender: true });
        })),
        h("div", { class: "fields", "data-path": `${base}.config` },
          ...(spec ? visible(spec.fields, step.config).map((d) => control(d, step.config, `${base}.config`)) : []),
          h("small", { class: "field-error" })),
        h("small", { class: "field-error" }));
    });
    const add = h("select", { id: "pl-add-transform" }, h("option", { value: "" }, "+ add a transform…"),
      ...Object.keys(TRANSFORMS).map((t) => h("option", { value: t }, t)));
    add.addEventListener("change", () => {
      if (!add.value) return;
      body.transforms.push({ type: add.value, config: clone(TRANSFORMS[add.value].init) });
      changed({ rerender: true });
    });
    const transformBox = h("fieldset", { class: "step-card", "data-path": "transforms" },
      h("legend", {}, "Transforms"), ...(steps.length ? steps : [h("span", { class: "muted" }, "None: items go to the destination as they are.")]), add,
      h("small", { class: "field-error" }));

    const destSpec = DESTINATIONS[destination.type];
    const destinationBox = h("fieldset", { class: "step-card", "data-path": "destination" },
      h("legend", {}, "Destination"),
      field("Type", typeSelect("destination.type", Object.keys(DESTINATIONS), destination.type, (type) => {
        body.destination = { type, config: clone(DESTINATIONS[type].init) };
        changed({ rerender: true });
      })),
      h("div", { class: "fields", "data-path": "destination.config" },
        ...(destSpec ? visible(destSpec.fields, destination.config).map((d) => control(d, destination.config, "destination.config")) : []),
        h("small", { class: "field-error" })),
      h("small", { class: "field-error" }));

    const optionsBox = h("details", { class: "step-card", "data-path": "options" }, h("summary", { class: "muted" }, "Options"),
      h("div", { class: "fields" }, ...OPTIONS.map((d) => control(d, body.options, "options"))),
      h("small", { class: "field-error" }));

    form.replaceChildren(field("Name", name), sourceBox, transformBox, destinationBox, optionsBox);
  }

  editor.addEventListener("input", () => {
    let parsed;
    try { parsed = JSON.parse(editor.value); } catch (error) {
      jsonErrors.replaceChildren(h("p", { class: "error" }, `Not valid JSON: ${error.message}`));
      validity.textContent = "";
      return;
    }
    body = isObject(parsed) ? parsed : body;
    renderForm();
    validateSoon();
  });

  function showErrors(error) {
    const detail = error.body?.detail || [];
    const marked = markErrors(form, detail);
    jsonErrors.replaceChildren(annotatedTree(body, error.fieldErrors));
    const count = marked.length;
    validity.className = "error";
    validity.textContent = `${count} problem${count === 1 ? "" : "s"}: ${marked.map((e) => `${e.path || "(body)"}: ${e.msg}`).join("; ")}`;
  }

  async function validate() {
    const mine = ++checks;
    try {
      await post("/api/console/pipelines/validate", body);
      if (mine !== checks) return;
      clearErrors(form);
      jsonErrors.replaceChildren();
      validity.className = "ok-text";
      validity.textContent = editing ? "✓ valid: ready to save" : "✓ valid: ready to create";
    } catch (error) {
      if (mine !== checks) return;
      if (error instanceof ApiError && error.status === 422) showErrors(error);
      else { validity.className = "error"; validity.textContent = String(error); }
    }
  }
  const validateSoon = debounce(validate, 300);

  async function save() {
    result.replaceChildren();
    if (view === "json") {
      try { body = JSON.parse(editor.value); } catch (error) {
        result.append(h("p", { class: "error" }, `Not valid JSON: ${error.message}`));
        return;
      }
    }
    try {
      const saved = editing ? await put(`/api/streaming/pipelines/${editing}`, body) : await post("/api/streaming/pipelines", body);
      result.append(h("p", { class: "ok-text" }, editing ? `Saved ${saved.id}` : `Created ${saved.id}`));
      await onSaved(saved);
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) showErrors(error);
      else result.append(h("p", { class: "error" }, String(error)));
    }
  }

  // Start from a pipeline's configuration (edit) or from the example (new).
  function load(pipeline) {
    editing = pipeline ? pipeline.id : null;
    body = pipeline
      ? clone({ name: pipeline.name, source: pipeline.source, transforms: pipeline.transforms, destination: pipeline.destination, options: pipeline.options })
      : clone(EXAMPLE);
    title.textContent = pipeline ? `Edit ${pipeline.name}` : "New pipeline";
    createButton.textContent = pipeline ? "Save changes" : "Create";
    result.replaceChildren();
    changed({ rerender: true });
  }

  load(null);
  return { element: root, load };
}
