// Command Center: live runs across the organisation, their events, and alerts.
import { get } from "../api.js";
import { h, workflowLink } from "../app.js";
import { frameBatcher, openStream } from "../stream.js";

const EVENT_TYPES = [
  "run:started", "run:status_changed", "run:progress", "run:tool_started", "run:tool_completed",
  "run:llm_call", "run:memory_op", "run:error", "run:completed", "alert:triggered", "alert:resolved",
];
const MAX_LOG = 300;

const listOf = (body, key) => (Array.isArray(body) ? body : (body && (body[key] || body.items)) || []);

export async function mount(root) {
  const runs = new Map(); // runId -> row state
  const alerts = new Map();
  const runBody = h("tbody", { id: "cc-runs" });
  const logBox = h("div", { class: "log", id: "cc-log" });
  const alertBox = h("div", { id: "cc-alerts" });
  const status = h("span", { class: "muted", id: "cc-status" }, "connecting…");
  const agentSelect = h("select", { id: "cc-agent" }, h("option", { value: "" }, "All agents"));
  const typeBoxes = EVENT_TYPES.map((type) =>
    h("label", { class: "muted" }, h("input", { type: "checkbox", value: type, checked: true }), ` ${type}`));

  root.append(
    h("div", { class: "card row" }, h("b", {}, "Filters"), agentSelect, ...typeBoxes, status),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", {}, "Live runs"),
        h("table", {}, h("thead", {}, h("tr", {},
          ...["Run", "Agent", "Status", "Tokens", "Cost", "Activity", "Temporal"].map((t) => h("th", {}, t)))), runBody)),
      h("div", {},
        h("div", { class: "card" }, h("h3", {}, "Alerts"), alertBox),
        h("div", { class: "card" }, h("h3", {}, "Events"), logBox))));

  try {
    for (const agent of listOf(await get("/api/agents"), "agents")) {
      agentSelect.append(h("option", { value: agent.id }, agent.name));
    }
  } catch { /* the agent list is a convenience */ }

  function upsertRun(runId, patch) {
    const row = { id: runId, ...(runs.get(runId) || {}), ...patch };
    runs.set(runId, row);
    return row;
  }

  function renderRuns() {
    const rows = [...runs.values()].sort((a, b) => String(b.startedAt || "").localeCompare(String(a.startedAt || "")));
    runBody.replaceChildren(...rows.slice(0, 100).map((run) => h("tr", { "data-run-id": run.id },
      h("td", {}, h("code", {}, run.id)),
      h("td", {}, run.agentName || run.agentId || ""),
      h("td", {}, h("span", { class: `badge ${run.status || ""}` }, run.status || "")),
      h("td", { class: "tokens" }, run.tokens ?? 0),
      h("td", { class: "cost" }, `$${Number(run.cost || 0).toFixed(6)}`),
      h("td", { class: "muted" }, run.activity || ""),
      h("td", {}, h("a", { href: workflowLink(`run-${run.id}`), target: "_blank" }, "workflow ↗")))));
  }

  function renderAlerts() {
    const items = [...alerts.values()].reverse();
    alertBox.replaceChildren(...(items.length ? items.map((alert) => h("div", { class: "row" },
      h("span", { class: `badge ${alert.state}` }, alert.state), h("b", {}, alert.name || alert.ruleName || alert.ruleId || "alert"),
      h("span", { class: "muted" }, alert.message || `${alert.metric ?? ""} ${alert.value ?? ""}`))) : [h("span", { class: "muted" }, "No alerts")]));
  }

  function apply(events) {
    for (const data of events) {
      const run = data.run || {};
      const runId = data.runId || run.id;
      const usage = run.tokenUsage || data.usage || data.tokenUsage;
      switch (data.type) {
        case "run:started":
        case "run:status_changed":
        case "run:completed":
        case "run:error":
          upsertRun(runId, {
            agentId: data.agentId || run.agentId, agentName: run.agentName, startedAt: run.startedAt,
            status: run.status || data.status || (data.type === "run:completed" ? "completed" : undefined),
            ...(usage ? { tokens: usage.total } : {}), ...(data.cost ?? run.cost) !== undefined ? { cost: data.cost ?? run.cost } : {},
            ...(data.type === "run:error" ? { activity: data.message || data.error?.message || (typeof run.error === "string" ? run.error : run.error?.message) || "error" } : {}),
          });
          break;
        case "run:progress":
          upsertRun(runId, { tokens: data.tokens ?? (usage && usage.total), cost: data.cost });
          break;
        case "run:tool_started":
          upsertRun(runId, { activity: `▶ ${data.tool?.name || data.tool || data.name}` });
          break;
        case "run:tool_completed":
          upsertRun(runId, { activity: `✓ ${data.tool?.name || data.tool || data.name}` });
          break;
        case "run:llm_call":
          upsertRun(runId, { activity: `LLM ${data.model || ""} ${data.latencyMs ? Math.round(data.latencyMs) + " ms" : ""}` });
          break;
        case "alert:triggered":
        case "alert:resolved": {
          const alert = data.alert || data;
          alerts.set(alert.id || alert.ruleId, { ...alert, state: data.type === "alert:triggered" ? "triggered" : "resolved" });
          break;
        }
      }
      logBox.prepend(h("div", {}, h("b", {}, data.type), " ", runId ? h("code", {}, runId) : "",
        " ", h("span", { class: "muted" }, JSON.stringify(data).slice(0, 160))));
    }
    while (logBox.childElementCount > MAX_LOG) logBox.lastElementChild.remove();
    renderRuns();
    renderAlerts();
  }
  const enqueue = frameBatcher(apply);

  try {
    for (const run of listOf(await get("/api/command-center/runs/live"), "runs")) {
      upsertRun(run.id, { ...run, tokens: run.tokenUsage?.total ?? run.tokens });
    }
    for (const alert of listOf(await get("/api/command-center/alerts"), "alerts")) {
      if (alert.state === "active" || alert.active || alert.status === "triggered") alerts.set(alert.id || alert.ruleId, { ...alert, state: "triggered" });
    }
  } catch (error) { status.textContent = String(error); }
  renderRuns();
  renderAlerts();

  let stream = null;
  function connect() {
    if (stream) stream.close();
    const params = {};
    if (agentSelect.value) params.agentIds = agentSelect.value;
    const types = typeBoxes.map((label) => label.querySelector("input")).filter((box) => box.checked).map((box) => box.value);
    if (types.length !== EVENT_TYPES.length) params.eventTypes = types.join(",");
    stream = openStream("/api/command-center/stream", params, enqueue, { onStatus: (s) => { status.textContent = s; } });
  }
  agentSelect.addEventListener("change", connect);
  typeBoxes.forEach((label) => label.querySelector("input").addEventListener("change", connect));
  connect();
  return () => stream && stream.close();
}
