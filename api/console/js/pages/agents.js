// Agents: the list, and a form to create or edit one (provider, model, prompt, tools, which
// tools need approval and how long an approval may wait). Errors land at the field they name.
import { ApiError, get, post, put } from "../api.js";
import { config, h } from "../app.js";
import { clearErrors, field, markErrors } from "../form.js";

const READ_ONLY = ["id", "createdAt", "updatedAt"];

export async function mount(root) {
  const list = h("tbody", { id: "ag-rows" });
  const formBox = h("div", { id: "ag-form-box" });
  root.append(h("div", { class: "grid" },
    h("div", { class: "card" },
      h("div", { class: "row" }, h("h3", { style: "flex:1" }, "Agents"),
        h("button", { id: "ag-new", onclick: () => edit(null) }, "New agent")),
      h("div", { class: "scroll-x" }, h("table", {},
        h("thead", {}, h("tr", {}, ...["Name", "Model", "Tools", "Approval", ""].map((t) => h("th", {}, t)))), list))),
    h("div", { class: "card" }, formBox)));

  let agents = [];
  async function refresh() {
    agents = await get("/api/agents");
    list.replaceChildren(...(agents.length ? agents.map((agent) => h("tr", { "data-agent-id": agent.id },
      h("td", {}, h("b", {}, agent.name), agent.description ? h("div", { class: "muted small" }, agent.description) : null),
      h("td", {}, `${agent.provider}/${agent.model}`),
      h("td", {}, agent.tools.join(", ") || h("span", { class: "muted" }, "none")),
      h("td", {}, agent.approvalRequired.length
        ? `${agent.approvalRequired.join(", ")}${agent.approvalTimeoutMs ? ` · ${agent.approvalTimeoutMs / 1000} s` : ""}`
        : h("span", { class: "muted" }, "none")),
      h("td", {}, h("button", { class: "secondary", "data-action": "edit", onclick: () => edit(agent) }, "Edit"))))
      : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No agents yet"))]));
  }

  function edit(agent) {
    const value = agent || { name: "", provider: config.providers.includes("openai") ? "openai" : config.providers[0] || "", model: "", tools: [], approvalRequired: [] };
    const input = (path, attrs = {}) => h("input", { "data-path": path, value: value[path] ?? "", ...attrs });
    const name = input("name", { id: "ag-name", required: true });
    const description = input("description", { id: "ag-description" });
    const provider = h("select", { id: "ag-provider", "data-path": "provider" },
      ...[...new Set([...config.providers, value.provider].filter(Boolean))].map((p) => h("option", { value: p, selected: p === value.provider }, p)));
    const model = input("model", { id: "ag-model", placeholder: "gpt-4o-mini" });
    const prompt = h("textarea", { id: "ag-prompt", "data-path": "systemPrompt", rows: 5 }, value.systemPrompt || "");
    const temperature = input("temperature", { id: "ag-temperature", type: "number", step: "0.1", min: 0, max: 2 });
    const maxTokens = input("maxTokens", { id: "ag-max-tokens", type: "number", min: 1 });
    const baseUrl = input("baseUrl", { id: "ag-base-url", placeholder: "https://… (OpenAI-compatible servers)" });
    const apiKey = input("apiKey", { id: "ag-api-key", placeholder: "${secrets.OPENAI_API_KEY}" });
    const timeout = h("input", { id: "ag-approval-timeout", "data-path": "approvalTimeoutMs", type: "number", min: 1, step: 1,
      value: value.approvalTimeoutMs ? value.approvalTimeoutMs / 1000 : "" });
    const options = h("textarea", { id: "ag-provider-options", "data-path": "providerOptions", rows: 3 },
      JSON.stringify(value.providerOptions || {}, null, 2));

    const known = [...new Set([...config.tools.map((t) => t.name), ...value.tools])];
    const describe = Object.fromEntries(config.tools.map((t) => [t.name, t.description]));
    const toolRows = known.map((toolName) => {
      const use = h("input", { type: "checkbox", "data-tool": toolName, checked: value.tools.includes(toolName) });
      const approve = h("input", { type: "checkbox", "data-approval": toolName, checked: value.approvalRequired.includes(toolName), disabled: !value.tools.includes(toolName) });
      use.addEventListener("change", () => { approve.disabled = !use.checked; if (!use.checked) approve.checked = false; });
      return h("div", { class: "tool-row", "data-tool-row": toolName },
        h("div", {}, h("label", { class: "check" }, use, " ", h("b", {}, toolName)),
          h("div", { class: "muted small" }, describe[toolName] || "")),
        h("label", { class: "check" }, approve, " needs approval"));
    });
    const tools = h("div", { "data-path": "tools" }, h("div", { "data-path": "approvalRequired", class: "tool-list" }, ...toolRows));
    const result = h("p", { id: "ag-result", role: "status" });
    const save = h("button", { id: "ag-save", type: "submit" }, agent ? "Save changes" : "Create agent");

    const form = h("form", { class: "form", id: "ag-form", "data-agent-id": agent?.id || "" },
      h("h3", {}, agent ? `Edit ${agent.name}` : "New agent"),
      h("div", { class: "fields" }, field("Name", name), field("Provider", provider), field("Model", model)),
      field("Description", description),
      field("System prompt", prompt),
      h("div", { class: "fields" }, field("Temperature", temperature), field("Max tokens", maxTokens)),
      h("div", { class: "field" }, h("span", { class: "field-label" }, "Tools"), tools, h("small", { class: "field-error" })),
      field("Approval timeout (seconds)", timeout, { hint: "a pending approval is rejected after this; empty waits indefinitely" }),
      h("details", {}, h("summary", { class: "muted" }, "Connection and provider options"),
        h("div", { class: "form" }, field("Base URL", baseUrl), field("API key (secret reference)", apiKey), field("Provider options (JSON)", options))),
      h("div", { class: "row" }, save, agent ? h("button", { type: "button", class: "secondary", onclick: () => edit(null) }, "Cancel") : null),
      result);

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      result.textContent = "";
      let providerOptions;
      try { providerOptions = options.value.trim() ? JSON.parse(options.value) : {}; } catch (error) {
        markErrors(form, [{ loc: ["body", "providerOptions"], msg: `not valid JSON: ${error.message}` }]);
        return;
      }
      const number = (node, scale = 1) => (node.value === "" ? null : Number(node.value) * scale);
      const chosen = [...form.querySelectorAll("[data-tool]")].filter((box) => box.checked).map((box) => box.dataset.tool);
      const body = {
        // Fields the form does not show (pricing, …) are sent back as they are.
        ...Object.fromEntries(Object.entries(agent || {}).filter(([key]) => !READ_ONLY.includes(key))),
        name: name.value.trim(), description: description.value, provider: provider.value, model: model.value.trim(),
        systemPrompt: prompt.value, temperature: number(temperature), maxTokens: number(maxTokens),
        tools: chosen,
        approvalRequired: [...form.querySelectorAll("[data-approval]")].filter((box) => box.checked).map((box) => box.dataset.approval),
        approvalTimeoutMs: number(timeout, 1000), baseUrl: baseUrl.value.trim() || null, apiKey: apiKey.value.trim() || null,
        providerOptions,
      };
      save.disabled = true;
      try {
        const saved = agent ? await put(`/api/agents/${agent.id}`, body) : await post("/api/agents", body);
        await refresh();
        edit(saved);
        formBox.querySelector("#ag-result").replaceChildren(h("span", { class: "ok-text" }, agent ? "Saved." : `Created ${saved.id}.`));
      } catch (error) {
        save.disabled = false;
        if (error instanceof ApiError && error.status === 422) {
          const unplaced = markErrors(form, error.body.detail).filter((e) => !e.at);
          result.replaceChildren(h("span", { class: "error" }, unplaced.length ? unplaced.map((e) => `${e.path}: ${e.msg}`).join("\n") : "Please fix the marked fields."));
        } else result.replaceChildren(h("span", { class: "error" }, String(error)));
      }
    });
    formBox.replaceChildren(form);
  }

  await refresh();
  edit(null);
}
