// Playground: chat with an agent; tokens stream in (batched per animation frame), tool calls show
// inline, and a pending approval can be granted or refused with a click.
import { get, post } from "../api.js";
import { h, workflowLink } from "../app.js";
import { frameBatcher, openStream } from "../stream.js";

export async function mount(root) {
  const agentSelect = h("select", { id: "pg-agent" });
  const chat = h("div", { class: "chat card", id: "pg-chat" });
  const input = h("textarea", { id: "pg-input", rows: 3, placeholder: "Ask something… (Enter to send)" });
  const send = h("button", { id: "pg-send" }, "Send");
  const cancel = h("button", { id: "pg-cancel", class: "secondary", disabled: true }, "Cancel");
  const footer = h("p", { class: "muted", id: "pg-status" });
  root.append(h("div", { class: "card row" }, h("b", {}, "Agent"), agentSelect,
    h("button", { class: "secondary", id: "pg-new" , onclick: () => newConversation() }, "New conversation")),
    chat, h("div", { class: "card" }, input, h("div", { class: "row" }, send, cancel, footer)));

  const agents = await get("/api/agents");
  for (const agent of agents) agentSelect.append(h("option", { value: agent.id }, `${agent.name} (${agent.provider}/${agent.model})`));
  if (!agents.length) footer.replaceChildren("No agents yet: ", h("a", { href: "#/agents" }, "create one"), ".");

  let conversationId = null;
  let stream = null;
  let runId = null;

  function newConversation() {
    if (stream) stream.close();
    conversationId = null;
    chat.replaceChildren();
  }
  agentSelect.addEventListener("change", newConversation);

  function finish(text) {
    if (stream) { stream.close(); stream = null; }
    send.disabled = false;
    cancel.disabled = true;
    footer.textContent = text;
  }

  async function sendMessage() {
    const content = input.value.trim();
    if (!content || !agentSelect.value) return;
    input.value = "";
    send.disabled = true;
    if (!conversationId) conversationId = (await post("/api/conversations", { agentId: agentSelect.value, title: content.slice(0, 60) })).id;
    chat.append(h("div", { class: "msg user" }, content));
    const answer = h("div", { class: "msg assistant", "data-role": "answer" });
    let textNode = document.createTextNode("");
    answer.append(textNode);
    chat.append(answer);

    const started = await post(`/api/conversations/${conversationId}/messages`, { content });
    runId = started.runId;
    cancel.disabled = false;
    footer.replaceChildren("running · ", h("a", { href: workflowLink(`run-${runId}`), target: "_blank" }, "workflow ↗"));

    const appendTokens = frameBatcher((tokens) => {
      textNode.appendData(tokens.join(""));
      chat.scrollTop = chat.scrollHeight;
    });
    stream = openStream(`/api/runs/${runId}/stream`, {}, (data) => {
      switch (data.type) {
        case "token":
          appendTokens(data.token);
          break;
        case "tool_call":
          answer.append(h("div", { class: "tool", "data-tool-call": data.toolCallId }, `tool ${data.name}(${JSON.stringify(data.arguments)})`));
          textNode = document.createTextNode("");
          answer.append(textNode);
          break;
        case "tool_result": {
          const box = answer.querySelector(`[data-tool-call="${CSS.escape(data.toolCallId)}"]`);
          if (box) box.append(h("div", { class: "muted" }, `→ ${JSON.stringify(data.result).slice(0, 300)}`));
          break;
        }
        case "approval_required": {
          const box = h("div", { class: "tool approval", "data-approval": data.toolCallId },
            `${data.name} needs your approval: ${JSON.stringify(data.arguments)} `);
          const decide = async (approved) => {
            box.querySelectorAll("button").forEach((b) => { b.disabled = true; });
            await post(`/api/runs/${runId}/approve`, { toolCallId: data.toolCallId, approved });
            box.append(h("b", {}, approved ? " approved" : " rejected"));
          };
          box.append(h("button", { class: "approve", onclick: () => decide(true) }, "Approve"), " ",
            h("button", { class: "danger reject", onclick: () => decide(false) }, "Reject"));
          answer.append(box);
          textNode = document.createTextNode("");
          answer.append(textNode);
          break;
        }
        case "done":
          finish(`done · ${data.usage ? data.usage.total : 0} tokens · $${Number(data.cost || 0).toFixed(6)}`);
          answer.dataset.done = "true";
          break;
        case "error":
          answer.append(h("div", { class: "error" }, data.message));
          finish(`error: ${data.code || ""}`);
          break;
      }
    }, { endOn: (data) => data.type === "done" || data.type === "error" });
  }

  send.addEventListener("click", sendMessage);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); sendMessage(); }
  });
  cancel.addEventListener("click", async () => { if (runId) await post(`/api/runs/${runId}/cancel`); });
  return () => stream && stream.close();
}
