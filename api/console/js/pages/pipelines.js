// Pipelines: status and live metrics, controls, create-from-JSON with field-level errors,
// checkpoints and dead letters. One SSE connection carries every listed pipeline's events.
import { ApiError, get, post } from "../api.js";
import { h, workflowLink } from "../app.js";
import { frameBatcher, openStream } from "../stream.js";

const EXAMPLE = {
  name: "orders-to-webhook",
  source: { type: "webhook" },
  transforms: [
    { type: "filter", config: { field: "status", operator: "eq", value: "paid" } },
    { type: "map", config: { expression: { orderId: "id", customer: "upper(customer.name)", total: "toNumber(total)" } } },
  ],
  destination: { type: "webhook", config: { url: "http://localhost:9000/hook", method: "POST", retryPolicy: { maxRetries: 3, backoffMs: 1000 } } },
  options: { batchSize: 500 },
};

function sparkline(points, width = 120, height = 24) {
  const max = Math.max(1, ...points);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const path = points.map((p, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(height - (p / max) * height).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("class", "spark");
  svg.innerHTML = `<path d="${path || "M0,0"}" fill="none" stroke="#4fb3ff" stroke-width="1.5"/>`;
  return svg;
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

export async function mount(root) {
  const tbody = h("tbody", { id: "pl-rows" });
  const editor = h("textarea", { id: "pl-json", rows: 14 }, JSON.stringify(EXAMPLE, null, 2));
  const createResult = h("div", { id: "pl-create-result" });
  const detail = h("div", { id: "pl-detail" });
  root.append(
    h("div", { class: "card" }, h("h3", {}, "Pipelines"),
      h("table", {}, h("thead", {}, h("tr", {}, ...["Name", "Status", "Throughput", "Processed", "Failed", "Latency p99", "Backpressure", "", "Temporal"].map((t) => h("th", {}, t)))), tbody)),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", {}, "Create from JSON"), editor,
        h("div", { class: "row" }, h("button", { id: "pl-create", onclick: () => create() }, "Create")), createResult),
      h("div", { class: "card" }, h("h3", {}, "Details"), detail)));

  const state = new Map(); // id -> {pipeline, metrics, spark: number[]}
  let stream = null;

  async function load() {
    const body = await get("/api/streaming/pipelines?limit=100");
    for (const pipeline of body.items) {
      const entry = state.get(pipeline.id) || { spark: [] };
      entry.pipeline = pipeline;
      try { entry.metrics = await get(`/api/streaming/pipelines/${pipeline.id}/metrics`); } catch { /* stopped */ }
      state.set(pipeline.id, entry);
    }
    render();
    if (stream) stream.close();
    const streams = [...state.keys()].map((id) => `pipeline:${id}`).join(",");
    if (streams) stream = openStream("/api/events/stream", { streams }, onEvent);
  }

  const onEvent = frameBatcher((events) => {
    for (const data of events) {
      const id = data.pipelineId || [...state.keys()].find((key) => data.stream === `pipeline:${key}`);
      const entry = state.get(id);
      if (!entry) continue;
      if (data.type === "status") entry.pipeline.status = data.status;
      if (data.type === "metrics") {
        entry.metrics = { ...entry.metrics, ...(data.metrics || data) };
        entry.spark = [...entry.spark, Number(entry.metrics.throughput || 0)].slice(-60);
      }
      if (data.type === "delivery_failed") entry.lastError = data.error || data.message;
    }
    render();
  });

  function control(id, action) {
    return h("button", { class: "secondary", "data-action": action, onclick: async () => {
      await post(`/api/streaming/pipelines/${id}/${action}`);
      await load();
    } }, action);
  }

  function render() {
    tbody.replaceChildren(...[...state.values()].map(({ pipeline, metrics = {}, spark }) => h("tr", { "data-pipeline-id": pipeline.id },
      h("td", {}, h("a", { href: "#/pipelines", onclick: (e) => { e.preventDefault(); showDetail(pipeline.id); } }, pipeline.name)),
      h("td", {}, h("span", { class: `badge ${pipeline.status}`, "data-status": pipeline.status }, pipeline.status)),
      h("td", {}, sparkline(spark), ` ${Number(metrics.throughput || 0).toFixed(1)}/s`),
      h("td", { class: "processed" }, metrics.itemsProcessed ?? 0),
      h("td", {}, metrics.itemsFailed ?? 0),
      h("td", {}, metrics.latency ? `${Math.round(metrics.latency.p99)} ms` : "–"),
      h("td", {}, `${Math.round(100 * (metrics.backpressure || 0))}%`),
      h("td", { class: "row" }, ...["start", "pause", "resume", "stop"].map((a) => control(pipeline.id, a))),
      h("td", {}, h("a", { href: workflowLink(`pipeline-${pipeline.id}`), target: "_blank" }, "workflow ↗")))));
  }

  async function create() {
    createResult.replaceChildren();
    let body;
    try { body = JSON.parse(editor.value); } catch (error) {
      createResult.append(h("p", { class: "error" }, `Not valid JSON: ${error.message}`));
      return;
    }
    try {
      const created = await post("/api/streaming/pipelines", body);
      createResult.append(h("p", {}, `Created ${created.id}`));
      await load();
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) createResult.append(annotatedTree(body, error.fieldErrors));
      else createResult.append(h("p", { class: "error" }, String(error)));
    }
  }

  async function showDetail(id) {
    const [checkpoints, deadLetters] = await Promise.all([
      get(`/api/streaming/pipelines/${id}/checkpoints`),
      get(`/api/streaming/pipelines/${id}/dead-letters`),
    ]);
    const cps = Array.isArray(checkpoints) ? checkpoints : checkpoints.items || [];
    const dls = Array.isArray(deadLetters) ? deadLetters : deadLetters.items || [];
    detail.replaceChildren(
      h("div", { class: "row" }, h("b", {}, state.get(id).pipeline.name),
        h("button", { class: "secondary", onclick: async () => { await post(`/api/streaming/pipelines/${id}/checkpoints`); showDetail(id); } }, "Create checkpoint"),
        h("button", { class: "secondary", onclick: async () => { await post(`/api/streaming/pipelines/${id}/dead-letters/replay`); showDetail(id); } }, "Replay dead letters")),
      h("h4", {}, `Checkpoints (${cps.length})`),
      h("table", {}, ...cps.map((c) => h("tr", {}, h("td", {}, c.id), h("td", {}, `offset ${c.offset}`), h("td", {}, c.createdAt || ""),
        h("td", {}, h("button", { class: "secondary", onclick: async () => { await post(`/api/streaming/pipelines/${id}/checkpoints/${c.id}/restore`); load(); } }, "restore"))))),
      h("h4", {}, `Dead letters (${dls.length})`),
      h("div", { class: "log" }, ...dls.slice(0, 50).map((d) => h("div", {}, `#${d.offset ?? ""} ${d.error || ""}`))));
  }

  await load();
  return () => stream && stream.close();
}
