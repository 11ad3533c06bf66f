// A2A tasks: the status flow as it moves, artifacts growing chunk by chunk, and a reply box when
// the task is input-required.
import { get, post } from "../api.js";
import { h, workflowLink } from "../app.js";
import { openStream } from "../stream.js";

const FLOW = ["submitted", "working", "input-required", "completed"];
// A2A 1.0 JSON names states TASK_STATE_INPUT_REQUIRED; the stream's updates also carry "input-required".
const norm = (state) => String(state || "").replace(/^TASK_STATE_/, "").toLowerCase().replace(/_/g, "-");
// A task in one of these states never changes again: its stream ends there.
const ENDED = new Set(["completed", "failed", "canceled", "rejected"]);

export async function mount(root) {
  const list = h("tbody", { id: "task-rows" });
  const agentSelect = h("select", { id: "task-agent" });
  const message = h("input", { id: "task-message", placeholder: "What should the agent do?", size: 50 });
  const view = h("div", { id: "task-view" });
  root.append(
    h("div", { class: "card row" }, h("b", {}, "New task"), agentSelect, message,
      h("button", { id: "task-create", onclick: () => create() }, "Create")),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h3", {}, "Task"), view),
      h("div", { class: "card" }, h("h3", {}, "Recent tasks"), h("table", {}, list))));

  for (const agent of await get("/api/agents")) agentSelect.append(h("option", { value: agent.id }, agent.name));
  let stream = null;

  async function refresh() {
    const body = await get("/api/a2a/tasks");
    const tasks = Array.isArray(body) ? body : body.items || body.tasks || [];
    list.replaceChildren(...tasks.slice(0, 30).map((task) => h("tr", {},
      h("td", {}, h("a", { href: "#/tasks", onclick: (e) => { e.preventDefault(); open(task.id); } }, task.id)),
      h("td", {}, h("span", { class: `badge ${norm(task.status?.state)}` }, norm(task.status?.state))))));
  }

  async function create() {
    const task = await post("/api/a2a/tasks", { agentId: agentSelect.value, message: message.value });
    message.value = "";
    await refresh();
    open(task.id);
  }

  function open(taskId) {
    if (stream) stream.close();
    const flow = h("div", { class: "flow", id: "task-flow" });
    const artifacts = new Map();
    const artifactBox = h("div", { id: "task-artifacts" });
    const messages = h("div", { class: "log", id: "task-messages" });
    const reply = h("div", { id: "task-reply", hidden: true },
      h("input", { id: "task-reply-text", placeholder: "Your answer", size: 50 }),
      h("button", { id: "task-reply-send", onclick: async () => {
        const input = document.getElementById("task-reply-text");
        await post(`/api/a2a/tasks/${taskId}/messages`, { content: input.value });
        input.value = "";
      } }, "Reply"));
    const cancel = h("button", { class: "secondary", onclick: () => post(`/api/a2a/tasks/${taskId}/cancel`) }, "Cancel");
    view.replaceChildren(h("div", { class: "row" }, h("code", {}, taskId),
      h("a", { href: workflowLink(`a2a-task-${taskId}`), target: "_blank" }, "workflow ↗"), cancel), flow, messages, artifactBox, reply);

    const seen = [];
    function setState(state, text) {
      if (!state) return;
      if (seen[seen.length - 1] !== state) seen.push(state);
      const steps = [...new Set([...seen, ...FLOW.filter((s) => !seen.includes(s) && s !== "input-required")])];
      flow.replaceChildren(...steps.map((s) => h("span", { class: `step ${s === state ? "current" : ""}`, "data-state": s }, s)));
      flow.dataset.state = state;
      reply.hidden = state !== "input-required";
      if (["input-required", "completed", "failed", "canceled", "rejected"].includes(state)) refresh();
      if (text) messages.append(h("div", {}, `${state}: ${text}`));
    }
    const textOf = (message) => (message?.parts || []).map((p) => p.text ?? (p.data ? JSON.stringify(p.data) : "")).join("");

    // lastEventId=0: the whole task, even if this browser watched it to its end before.
    stream = openStream(`/api/a2a/tasks/${taskId}/stream`, { lastEventId: 0 }, (data) => {
      switch (data.type) {
        case "task":
          setState(norm(data.task.status?.state), textOf(data.task.status?.message));
          for (const artifact of data.task.artifacts || []) artifacts.set(artifact.artifactId, textOf(artifact));
          break;
        case "statusUpdate":
          setState(data.state || norm(data.status?.state), textOf(data.status?.message || data.message));
          break;
        case "message":
          messages.append(h("div", {}, `${String(data.message.role).replace(/^ROLE_/, "").toLowerCase()}: ${textOf(data.message)}`));
          break;
        case "artifactUpdate": {
          const id = data.artifact?.artifactId || "artifact";
          const chunk = typeof data.chunk === "string" ? data.chunk : textOf(data.chunk || data.artifact);
          // Chunks grow the artifact; the last chunk carries the whole artifact.
          if (data.lastChunk) artifacts.set(id, textOf(data.artifact) || artifacts.get(id) || "");
          else artifacts.set(id, (artifacts.get(id) || "") + chunk);
          break;
        }
      }
      artifactBox.replaceChildren(...[...artifacts.entries()].map(([id, text]) =>
        h("div", {}, h("b", {}, id), h("div", { class: "artifact", "data-artifact": id }, text))));
    }, { endOn: (data) => data.type === "statusUpdate" && ENDED.has(data.state || norm(data.status?.state)) });
  }

  await refresh();
  return () => stream && stream.close();
}
