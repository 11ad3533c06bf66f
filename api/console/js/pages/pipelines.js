// Pipelines: status and live metrics, controls, the builder (form or JSON, checked live against
// the API), checkpoints and dead letters. One SSE connection carries every listed pipeline's events.
import { get, post } from "../api.js";
import { h, workflowLink } from "../app.js";
import { pipelineBuilder } from "../pipelineBuilder.js";
import { frameBatcher, openStream } from "../stream.js";

function sparkline(points, width = 120, height = 24) {
  const max = Math.max(1, ...points);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const path = points.map((p, i) => `${i ? "L" : "M"}${(i * step).toFixed(1)},${(height - (p / max) * height).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("class", "spark");
  svg.innerHTML = `<path d="${path || "M0,0"}" fill="none" stroke="#4fb3ff" stroke-width="1.5"/>`;
  return svg;
}

export async function mount(root) {
  const tbody = h("tbody", { id: "pl-rows" });
  const detail = h("div", { id: "pl-detail" });
  const builder = pipelineBuilder({ onSaved: () => load() });
  root.append(
    h("div", { class: "card" }, h("h3", {}, "Pipelines"),
      h("div", { class: "scroll-x" }, h("table", {}, h("thead", {}, h("tr", {}, ...["Name", "Status", "Throughput", "Processed", "Failed", "Latency p99", "Backpressure", "", "Temporal"].map((t) => h("th", {}, t)))), tbody))),
    h("div", { class: "grid" },
      builder.element,
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
      h("td", { class: "row" }, ...["start", "pause", "resume", "stop"].map((a) => control(pipeline.id, a)),
        h("button", { class: "secondary", "data-action": "edit", onclick: () => builder.load(pipeline) }, "edit")),
      h("td", {}, h("a", { href: workflowLink(`pipeline-${pipeline.id}`), target: "_blank" }, "workflow ↗")))));
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
