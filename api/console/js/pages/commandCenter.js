// Command Center: live runs across the organisation (ended ones move to "Recent"), alerts with
// their history, and the events: seeded from recent history, then live, resumable.
import { get } from "../api.js";
import { h, workflowLink } from "../app.js";
import { alertRule, eventRow } from "../events.js";
import { frameBatcher, openStream } from "../stream.js";

const EVENT_TYPES = [
  "run:started", "run:status_changed", "run:progress", "run:tool_started", "run:tool_completed",
  "run:llm_call", "run:memory_op", "run:error", "run:completed", "alert:triggered", "alert:resolved",
];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const HISTORY = 100; // events replayed into the pane when it opens
const MAX_LOG = 300;
const MAX_RECENT = 20;
const MAX_ALERTS = 30;

const listOf = (body, key) => (Array.isArray(body) ? body : (body && (body[key] || body.items)) || []);
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");

export async function mount(root) {
  const runs = new Map(); // runId -> row state
  const alerts = new Map(); // alertId -> alert (AlertPublic shape)
  const runBody = h("tbody", { id: "cc-runs" });
  const recentBody = h("tbody", { id: "cc-recent" });
  const logBox = h("div", { class: "log events", id: "cc-log" });
  const alertBox = h("div", { id: "cc-alerts" });
  const status = h("span", { class: "muted", id: "cc-status" }, "connecting…");
  const agentSelect = h("select", { id: "cc-agent" }, h("option", { value: "" }, "All agents"));
  const typeBoxes = EVENT_TYPES.map((type) =>
    h("label", { class: "muted check" }, h("input", { type: "checkbox", value: type, checked: true }), ` ${type}`));
  const runTable = (body, columns) => h("div", { class: "scroll-x" }, h("table", { class: "runs" },
    h("thead", {}, h("tr", {}, ...columns.map((t) => h("th", {}, t)))), body));

  root.append(
    h("div", { class: "card row" }, h("b", {}, "Filters"), agentSelect,
      h("details", { class: "types" }, h("summary", {}, "Event types"), h("div", { class: "row" }, ...typeBoxes)), status),
    h("div", { class: "grid" },
      h("div", {},
        h("div", { class: "card" }, h("h3", {}, "Live runs"),
          runTable(runBody, ["Run", "Agent", "Status", "Tokens", "Cost", "Activity", "Temporal"])),
        h("div", { class: "card" }, h("h3", {}, "Recent"),
          runTable(recentBody, ["Run", "Agent", "Status", "Tokens", "Cost", "Ended", "Temporal"]))),
      h("div", {},
        h("div", { class: "card" }, h("h3", {}, "Alerts"), alertBox),
        h("div", { class: "card" }, h("h3", {}, "Events"), logBox))));

  try {
    for (const agent of listOf(await get("/api/agents"), "agents")) {
      agentSelect.append(h("option", { value: agent.id }, agent.name));
    }
  } catch { /* the agent list is a convenience */ }

  function upsertRun(runId, patch) {
    if (!runId) return null;
    const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    const row = { id: runId, ...(runs.get(runId) || {}), ...defined };
    runs.set(runId, row);
    return row;
  }

  function runRow(run, last) {
    return h("tr", { "data-run-id": run.id, "data-status": run.status || "" },
      h("td", {}, h("code", { title: run.id }, run.id)),
      h("td", {}, run.agentName || run.agentId || ""),
      h("td", {}, h("span", { class: `badge ${run.status || ""}` }, run.status || "")),
      h("td", { class: "tokens" }, run.tokens ?? 0),
      h("td", { class: "cost" }, `$${Number(run.cost || 0).toFixed(6)}`),
      h("td", { class: "muted" }, last),
      h("td", {}, h("a", { href: workflowLink(`run-${run.id}`), target: "_blank" }, "workflow ↗")));
  }

  function renderRuns() {
    const agent = agentSelect.value;
    const shown = [...runs.values()].filter((run) => !agent || run.agentId === agent);
    const live = shown.filter((run) => !TERMINAL.has(run.status))
      .sort((a, b) => String(b.startedAt || b.createdAt || "").localeCompare(String(a.startedAt || a.createdAt || "")));
    const ended = shown.filter((run) => TERMINAL.has(run.status))
      .sort((a, b) => String(b.completedAt || "").localeCompare(String(a.completedAt || "")));
    // Forget what scrolled out of "Recent", so the map stays bounded.
    for (const run of ended.slice(MAX_RECENT)) if (!agent) runs.delete(run.id);
    runBody.replaceChildren(...(live.length ? live.slice(0, 100).map((run) => runRow(run, run.activity || ""))
      : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No run is active"))]));
    recentBody.replaceChildren(...ended.slice(0, MAX_RECENT).map((run) =>
      runRow(run, run.activity && run.status === "failed" ? run.activity : time(run.completedAt))));
  }

  function renderAlerts() {
    const items = [...alerts.values()].sort((a, b) =>
      (a.status === "active" ? 0 : 1) - (b.status === "active" ? 0 : 1) || String(b.triggeredAt).localeCompare(String(a.triggeredAt)));
    for (const alert of items.slice(MAX_ALERTS)) alerts.delete(alert.id);
    alertBox.replaceChildren(...(items.length ? items.slice(0, MAX_ALERTS).map((alert) => {
      const active = alert.status === "active";
      return h("div", { class: "alert", "data-alert-id": alert.id, "data-status": active ? "triggered" : "resolved" },
        h("div", { class: "row" },
          h("span", { class: `badge ${active ? "triggered" : "resolved"}` }, active ? "triggered" : "resolved"),
          h("b", {}, alert.ruleName || alert.ruleId || "alert"),
          h("span", { class: "muted" }, alertRule(alert))),
        h("div", { class: "muted small" },
          `triggered ${time(alert.triggeredAt)} (value ${alert.value})`,
          active ? "" : ` · resolved ${time(alert.resolvedAt)}${alert.resolvedValue === null || alert.resolvedValue === undefined ? "" : ` (value ${alert.resolvedValue})`}`));
    }) : [h("span", { class: "muted" }, "No alerts yet")]));
  }

  function apply(batch) {
    for (const { data, id } of batch) {
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
            completedAt: run.completedAt,
            status: run.status || data.status || (data.type === "run:completed" ? "completed" : undefined),
            tokens: usage ? usage.total : undefined, cost: data.cost ?? run.cost,
            activity: data.type === "run:error" ? (data.error?.message || data.message || run.error || "error") : undefined,
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
        case "alert:resolved":
          if (data.alert?.id) alerts.set(data.alert.id, { ...(alerts.get(data.alert.id) || {}), ...data.alert });
          break;
      }
      logBox.prepend(eventRow(data, id));
    }
    while (logBox.childElementCount > MAX_LOG) logBox.lastElementChild.remove();
    renderRuns();
    renderAlerts();
  }
  const enqueue = frameBatcher(apply);

  try {
    const [live, recent, alertList] = await Promise.all([
      get("/api/command-center/runs/live"), get(`/api/runs?limit=${MAX_RECENT}`), get(`/api/command-center/alerts?limit=${MAX_ALERTS}`),
    ]);
    for (const item of [...listOf(recent, "runs"), ...listOf(live, "runs")]) {
      upsertRun(item.id, { ...item, tokens: item.tokenUsage?.total ?? item.tokens });
    }
    for (const alert of listOf(alertList, "alerts")) alerts.set(alert.id, alert);
  } catch (error) { status.textContent = String(error); }
  renderRuns();
  renderAlerts();

  let stream = null;
  function connect() {
    if (stream) stream.close();
    // A new view of the events: start again from the last HISTORY events matching the filters.
    logBox.replaceChildren();
    const params = { history: HISTORY };
    if (agentSelect.value) params.agentIds = agentSelect.value;
    const types = typeBoxes.map((label) => label.querySelector("input")).filter((box) => box.checked).map((box) => box.value);
    if (types.length !== EVENT_TYPES.length) params.eventTypes = types.join(",");
    stream = openStream("/api/command-center/stream", params, (data, id) => enqueue({ data, id }),
      { onStatus: (s) => { status.textContent = s; } });
  }
  agentSelect.addEventListener("change", () => { renderRuns(); connect(); });
  typeBoxes.forEach((label) => label.querySelector("input").addEventListener("change", connect));
  connect();
  return () => stream && stream.close();
}
