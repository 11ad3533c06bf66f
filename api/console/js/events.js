// Command Center events as readable rows: a per-type summary line, the raw JSON on expand.
import { h } from "./app.js";

const money = (value) => `$${Number(value || 0).toFixed(6)}`;
const ms = (value) => (value === null || value === undefined ? "" : `${Math.round(value)} ms`);
const toolName = (data) => data.tool?.name || data.tool || data.name || "tool";
const shortArgs = (args) => {
  if (!args || typeof args !== "object") return "";
  const text = Object.entries(args).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ");
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
};
const errorText = (data) => data.error?.message || data.message || (typeof data.error === "string" ? data.error : "") || data.run?.error || "error";
export const alertRule = (alert) => `${alert.metric} ${{ gt: ">", gte: "≥", lt: "<", lte: "≤", eq: "=" }[alert.comparator] || alert.comparator} ${alert.threshold}`;

// type -> [label, css kind, summary(data)]
const KINDS = {
  "run:started": ["started", "run", (d) => `${d.run?.agentName || d.agentId || ""} started`],
  "run:status_changed": ["status", "run", (d) => `${d.previousStatus || "?"} → ${d.status || d.run?.status || "?"}`],
  "run:progress": ["progress", "tokens", (d) => `${d.tokens ?? d.tokenUsage?.total ?? 0} tokens · ${money(d.cost)}`],
  "run:tool_started": ["tool ▶", "tool", (d) => `${toolName(d)}(${shortArgs(d.arguments)})`],
  "run:tool_completed": ["tool ✓", "tool", (d) => `${toolName(d)} ${d.ok === false ? `✗ ${d.status || "failed"}` : "ok"} · ${ms(d.durationMs)}`],
  "run:llm_call": ["LLM", "tokens", (d) => `${d.model || ""} · ${d.tokens?.total ?? 0} tokens · ${ms(d.latencyMs)}${d.toolCalls ? ` · ${d.toolCalls} tool call(s)` : ""}`],
  "run:memory_op": ["memory", "tool", (d) => (d.op === "search" ? `search "${d.query}" → ${d.results} result(s)` : `${d.op} ${d.chars ?? ""} chars`)],
  "run:error": ["error", "bad", (d) => errorText(d)],
  "run:completed": ["completed", "ok", (d) => `${d.usage?.total ?? d.run?.tokenUsage?.total ?? 0} tokens · ${money(d.cost ?? d.run?.cost)}`],
  "alert:triggered": ["alert", "warn", (d) => `${d.alert?.ruleName || "rule"}: ${alertRule(d.alert || {})} (value ${d.alert?.value})`],
  "alert:resolved": ["resolved", "ok", (d) => `${d.alert?.ruleName || "rule"} resolved (value ${d.alert?.resolvedValue ?? "–"})`],
};

export function summarize(data) {
  const [label, kind, summary] = KINDS[data.type] || [data.type, "", () => ""];
  let text = "";
  try { text = summary(data); } catch { /* an unexpected shape still gets its row */ }
  return { label, kind, text };
}

export function eventRow(data, eventId) {
  const { label, kind, text } = summarize(data);
  const runId = data.runId || data.run?.id;
  const json = h("pre", { class: "event-json" });
  const row = h("details", { class: "event", "data-type": data.type, "data-event-id": eventId || "" },
    h("summary", {},
      h("span", { class: `etype ${kind}`, title: data.type }, label),
      h("span", { class: "esum" }, text),
      runId ? h("code", { class: "erun", title: runId }, runId.slice(-8)) : null),
    json);
  // The JSON is rendered when first opened: hundreds of rows stay cheap.
  row.addEventListener("toggle", () => { if (row.open && !json.textContent) json.textContent = JSON.stringify(data, null, 2); });
  return row;
}
