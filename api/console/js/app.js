// The console shell: sign-in, hash routing, and one live view at a time. Each page module exports
// `mount(root) -> cleanup`; the cleanup closes every stream the page opened.
import { ApiError, get, session } from "./api.js";

const pages = {
  "command-center": () => import("./pages/commandCenter.js"),
  playground: () => import("./pages/playground.js"),
  agents: () => import("./pages/agents.js"),
  pipelines: () => import("./pages/pipelines.js"),
  tasks: () => import("./pages/tasks.js"),
  voice: () => import("./pages/voice.js"),
};

const main = document.getElementById("main");
let cleanup = null;

export let config = { temporalUiUrl: "", temporalNamespace: "default", providers: [], tools: [] };

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function workflowLink(workflowId) {
  const base = `${config.temporalUiUrl}/namespaces/${encodeURIComponent(config.temporalNamespace)}`;
  return `${base}/workflows/${encodeURIComponent(workflowId)}`;
}

function showSignin(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("signout").hidden = true;
  main.replaceChildren(document.getElementById("signin-template").content.cloneNode(true));
  const error = document.getElementById("signin-error");
  error.textContent = message || "";
  document.getElementById("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    session.key = document.getElementById("signin-key").value.trim();
    await start();
  });
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const name = (location.hash.replace(/^#\//, "") || "command-center").split("/")[0];
  const load = pages[name] || pages["command-center"];
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === name);
  main.replaceChildren();
  const module = await load();
  cleanup = await module.mount(main) || null;
}

async function start() {
  if (!session.key) return showSignin();
  try {
    const me = await get("/api/me");
    config = await get("/api/console/config");
    document.getElementById("whoami").textContent = `${me.orgName} · ${me.keyPrefix}…`;
  } catch (error) {
    session.key = null;
    return showSignin(error instanceof ApiError && error.status === 401 ? "That key was not accepted." : String(error));
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("signout").hidden = false;
  await route();
}

document.getElementById("signout").addEventListener("click", () => {
  if (cleanup) { cleanup(); cleanup = null; }
  session.key = null;
  showSignin();
});
window.addEventListener("hashchange", () => session.key && route());
start();
