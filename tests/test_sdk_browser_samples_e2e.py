"""The product docs' browser samples, run in a real Chromium against the real stack exactly as
the docs write them except for authentication: a browser's EventSource cannot send headers, so
the key goes in `?access_token=` (the docs' `{ headers }` option is kept; browsers ignore it).
The reconnect helper's TypeScript annotations are dropped so the page can run it as JavaScript."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from playwright.async_api import Page, Request, Response, Route

from deeployd.services import Services
from tests.agent_support import auth, create_agent, create_conversation, scripted_agent
from tests.conftest import Org, RunningApi
from tests.test_sdk_typescript import PACKAGE, dev_dependencies, run_in_package

# What the samples call: the app's own functions, here recording their arguments.
APP = """
window.calls = [];
const record = (name) => (...args) => window.calls.push([name, ...args]);
for (const name of ["appendToResponse", "showToolCall", "addRunToLiveView", "updateRunProgress",
  "showToolExecution", "markRunComplete", "showAlert", "initializeTaskView", "appendMessage",
  "updateStatus", "finalizeArtifact", "appendToArtifact"]) window[name] = record(name);
"""

BASIC_STREAMING = """
// Stream a conversation message
const eventSource = new EventSource(
`/api/conversations/${conversationId}/messages?stream=true&access_token=${token}`,
{ headers: { Authorization: `Bearer ${token}` } }
);

eventSource.onmessage = (event) => {
const data = JSON.parse(event.data);

switch (data.type) {
case 'token':
// Append token to response
appendToResponse(data.token);
break;
case 'tool_call':
// Agent is using a tool
showToolCall(data.name, data.arguments);
break;
case 'done':
// Response complete
console.log('Tokens:', data.usage);
console.log('Cost:', data.cost);
eventSource.close();
break;
case 'error':
console.error('Error:', data.message);
eventSource.close();
break;
}
};
"""

COMMAND_CENTER = """
// Filter by specific agents
const params = new URLSearchParams({
agentIds: agentIds,
eventTypes: 'run:started,run:completed,run:error'
});

const eventSource = new EventSource(
`/api/command-center/stream?${params}&access_token=${token}`,
{ headers: { Authorization: `Bearer ${token}` } }
);

eventSource.onmessage = (event) => {
const data = JSON.parse(event.data);

switch (data.type) {
case 'run:started':
addRunToLiveView(data.run);
break;
case 'run:progress':
updateRunProgress(data.runId, data.tokens, data.cost);
break;
case 'run:tool_started':
showToolExecution(data.runId, data.tool);
break;
case 'run:completed':
markRunComplete(data.runId, data.result);
break;
case 'alert:triggered':
showAlert(data.alert);
break;
}
};
"""

TASK_STREAM = """
const eventSource = new EventSource(
`/api/a2a/tasks/${taskId}/stream?access_token=${token}`,
{ headers: { Authorization: `Bearer ${token}` } }
);

eventSource.onmessage = (event) => {
const data = JSON.parse(event.data);

switch (data.type) {
case 'task':
// Initial task state
initializeTaskView(data.task);
break;
case 'message':
// Text message from agent
appendMessage(data.message);
break;
case 'statusUpdate':
// Status change
updateStatus(data.status, data.message);
break;
case 'artifactUpdate':
// Artifact being produced
if (data.lastChunk) {
finalizeArtifact(data.artifact);
} else {
appendToArtifact(data.chunk);
}
break;
}
};
"""

RECONNECT_HELPER = """
function createReconnectingEventSource(url) {
let eventSource;
let reconnectAttempts = 0;
const maxReconnectAttempts = 5;

function connect() {
eventSource = new EventSource(url);

eventSource.onopen = () => {
reconnectAttempts = 0;
};

eventSource.onerror = () => {
eventSource.close();

if (reconnectAttempts < maxReconnectAttempts) {
reconnectAttempts++;
const delay = Math.min(1000 * Math.pow(2, reconnectAttempts), 30000);
setTimeout(connect, delay);
}
};

return eventSource;
}

return connect();
}
"""

# Counts every EventSource the page creates and every `done` any of them receives, without
# touching the samples (the helper attaches no onmessage of its own).
OBSERVE_EVENT_SOURCES = """
window.sources = { created: 0, done: 0 };
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) {
    super(...args);
    window.sources.created += 1;
    this.addEventListener("message", (e) => {
      if (JSON.parse(e.data).type === "done") window.sources.done += 1;
    });
  }
};
"""

SCRIPT = [
    {
        "text": "Let me compute that.",
        "toolCalls": [{"name": "calculator", "arguments": {"expression": "(2 + 3) * 7"}}],
    },
    {"text": "It is {{lastToolResult.result}}."},
]
ASK = [
    {"toolCalls": [{"name": "ask_user", "arguments": {"question": "Which city?"}}]},
    {"text": "The weather in {{lastToolResult.answer}} is sunny today, enjoy it."},
]


def scoped(sample: str, **names: str) -> str:
    """The sample inside a function that defines the names it uses (token, ids), exposing its
    EventSource as `window.sample` so the test can see when it is closed."""
    consts = "".join(f"const {k} = {json.dumps(v)};\n" for k, v in names.items())
    return f"(() => {{\n{consts}{sample}\nwindow.sample = eventSource;\n}})()"


async def until(probe: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "the page never got there"
        await asyncio.sleep(0.1)


async def calls(page: Page, name: str) -> list[list[Any]]:
    found: list[list[Any]] = await page.evaluate(
        "(name) => window.calls.filter((c) => c[0] === name).map((c) => c.slice(1))", name
    )
    return found


async def on_api_origin(page: Page, api: RunningApi) -> None:
    """The samples use relative URLs: run them on a page of the API's origin."""
    await page.goto(f"{api.url}/healthz")
    await page.evaluate(APP)


async def test_the_docs_basic_streaming_and_command_center_samples(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    logs: list[str] = []
    page.on("console", lambda message: logs.append(message.text))
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent(SCRIPT, tools=["calculator"]))
        other = await create_agent(http, org, scripted_agent([{"text": "Not watched."}]))
        await on_api_origin(page, api)
        await page.evaluate(scoped(COMMAND_CENTER, agentIds=agent["id"], token=org.admin_key))
        await until(lambda: page.evaluate("window.sample.readyState === 1"))

        async def send(agent_id: str) -> str:
            conv = await create_conversation(http, org, agent_id)
            started = await http.post(
                f"/api/conversations/{conv}/messages", json={"content": "What is (2 + 3) * 7?"}
            )
            assert started.status_code == 202, started.text
            return conv

        await send(other["id"])
        conversation_id = await send(agent["id"])
        await page.evaluate(
            scoped(BASIC_STREAMING, conversationId=conversation_id, token=org.admin_key)
        )
        # The basic sample: tokens, the tool call, then done with usage and cost; it closes.
        await until(lambda: page.evaluate("window.sample.readyState === 2"))
        tokens = await calls(page, "appendToResponse")
        assert "".join(t[0] for t in tokens) == "Let me compute that.\n\nIt is 35."
        assert await calls(page, "showToolCall") == [["calculator", {"expression": "(2 + 3) * 7"}]]
        assert any(line.startswith("Tokens:") for line in logs)
        assert any(line.startswith("Cost:") for line in logs)
        # The Command Center sample saw only the watched agent's run start and complete.
        completed = await until(lambda: calls(page, "markRunComplete"))
        started = await calls(page, "addRunToLiveView")
        assert [run[0]["agentId"] for run in started] == [agent["id"]]
        assert completed[0][0] == started[0][0]["id"]
        assert completed[0][1].endswith("It is 35.")  # the run's result: its answer


async def test_the_docs_task_stream_sample_through_input_required(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent(ASK, tools=["ask_user"]))
        task = (
            await http.post("/api/a2a/tasks", json={"agentId": agent["id"], "message": "Weather?"})
        ).json()
        await on_api_origin(page, api)
        await page.evaluate(scoped(TASK_STREAM, taskId=task["id"], token=org.admin_key))

        async def states() -> list[str]:
            return [s[0]["state"] for s in await calls(page, "updateStatus")]

        await until(lambda: _has(states, "TASK_STATE_INPUT_REQUIRED"))
        answered = await http.post(
            f"/api/a2a/tasks/{task['id']}/messages", json={"content": "Paris"}
        )
        assert answered.status_code == 202, answered.text
        final = await until(lambda: calls(page, "finalizeArtifact"))
    assert final[0][0]["parts"][0]["text"] == "The weather in Paris is sunny today, enjoy it."
    chunks = await calls(page, "appendToArtifact")
    assert (
        "".join(c[0] for c in chunks if c[0] is not None)
        == "The weather in Paris is sunny today, enjoy it."
    )
    assert (await calls(page, "initializeTaskView"))[0][0]["id"] == task["id"]
    assert (await states())[-1] == "TASK_STATE_COMPLETED"
    # The sample never closes its EventSource. The browser reconnects on its own with the final
    # event's id, is answered 204, and stops for good.
    await until(lambda: page.evaluate("window.sample.readyState === 2"), timeout=15)


async def _has(probe: Callable[[], Awaitable[list[str]]], value: str) -> bool:
    return value in await probe()


async def test_the_docs_reconnect_helper_ends_after_one_done(
    api: RunningApi, org: Org, worker: Services, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "Finished already."}]))
        conv = await create_conversation(http, org, agent["id"])
        done = await http.post(
            f"/api/conversations/{conv}/messages", params={"wait": "true"}, json={"content": "hi"}
        )
        assert done.json()["status"] == "completed"
    statuses: list[int] = []

    def on_response(response: Response) -> None:
        if f"/api/conversations/{conv}/messages" in response.url:
            statuses.append(response.status)

    async def answered(connections: int) -> bool:
        return len(statuses) >= connections

    page.on("response", on_response)
    await on_api_origin(page, api)
    # Timers are the page's fake clock, so the helper's 2-30 s backoffs pass in a moment.
    await page.clock.install()
    await page.add_script_tag(content=OBSERVE_EVENT_SOURCES)
    await page.add_script_tag(content=RECONNECT_HELPER)  # as a page would load it
    url = f"/api/conversations/{conv}/messages?stream=true&access_token={org.admin_key}"
    await page.evaluate("(url) => { window.helper = createReconnectingEventSource(url); }", url)
    await until(lambda: page.evaluate("window.sources.done === 1"))

    async def settled() -> int:
        # Let every pending timer fire, then wait for the connection it opened to be answered.
        await page.clock.run_for(31_000)
        created: int = await page.evaluate("window.sources.created")
        await until(lambda: answered(created))
        return created

    counts = [await settled() for _ in range(8)]
    assert await page.evaluate("window.sources.done") == 1
    # One connection with the run and its done, then the helper's own retries, each answered 204
    # (none replays the run), and then no connection at all: the helper has ended.
    assert counts[-1] == counts[-3]
    assert statuses[0] == 200
    assert statuses[1:] and set(statuses[1:]) == {204}
    assert len(statuses) == counts[-1] == 6


SDK_IN_THE_PAGE = """
async ({ conversationId, key }) => {
  const { DeeploydClient } = await import("/sdk-under-test/index.js");
  const client = new DeeploydClient({ baseUrl: "", apiKey: key });
  const stream = await client.conversations.sendMessageStream({ conversationId, content: "Hi" });
  let text = "";
  let done = null;
  for await (const event of stream) {
    if (event.type === "token") text += event.token;
    if (event.type === "done") done = event;
  }
  // Reading the ended run again is a new read for the SDK, not a browser's reconnect: no 204.
  const rereads = [];
  for (const _ of [1, 2]) {
    const again = [];
    for await (const event of client.conversations.stream(conversationId)) again.push(event.type);
    rereads.push(again.join(","));
  }
  const audio = await client.voice.ttsStream({ text: "Hello there.", voice: "alloy", format: "mp3" });
  let bytes = 0;
  const reader = audio.getReader();
  for (;;) {
    const { done: end, value } = await reader.read();
    if (end) break;
    bytes += value.length;
  }
  return { text, total: done.usage.total, runId: stream.runId, bytes, rereads };
}
"""


async def test_the_sdk_itself_runs_in_the_browser_with_the_key_in_a_header(
    api: RunningApi, org: Org, worker: Services, page: Page, tmp_path: Any
) -> None:
    await dev_dependencies()
    code, out = await run_in_package(
        str(PACKAGE / "node_modules" / ".bin" / "tsc"),
        "-p",
        "tsconfig.build.json",
        "--outDir",
        str(tmp_path),
        timeout=120,
    )
    assert code == 0, out

    async def serve_sdk(route: Route) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        await route.fulfill(body=(tmp_path / name).read_bytes(), content_type="text/javascript")

    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    await page.route(f"{api.url}/sdk-under-test/*", serve_sdk)
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "Hello from the SDK."}]))
        conversation_id = await create_conversation(http, org, agent["id"])
    await on_api_origin(page, api)
    result = await page.evaluate(
        SDK_IN_THE_PAGE, {"conversationId": conversation_id, "key": org.admin_key}
    )
    assert result["text"] == "Hello from the SDK."
    assert result["total"] > 0 and result["runId"].startswith("run_")
    assert result["bytes"] > 1000
    api_calls = [r for r in requests if "/api/" in r.url]
    assert result["rereads"] == ["token,token,token,token,done"] * 2
    assert len(api_calls) == 4
    assert all(org.admin_key not in r.url for r in requests)
    for call in api_calls:
        assert (await call.all_headers()).get("authorization") == f"Bearer {org.admin_key}"
