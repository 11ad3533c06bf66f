"""A message's run streamed end to end: tokens, tool calls and results, usage and cost."""

from __future__ import annotations

import asyncio

import httpx
from temporalio.client import Client as TemporalClient

from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    scripted_agent,
    send_streaming,
    text_of,
    types,
)
from tests.conftest import Org, RunningApi

CALC_SCRIPT = [
    {
        "text": "Let me compute that.",
        "toolCalls": [{"name": "calculator", "arguments": {"expression": "(2 + 3) * 7"}}],
    },
    {"text": "The answer is {{lastToolResult.result}}."},
]


async def test_message_streams_tokens_tool_call_result_and_done(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(
                CALC_SCRIPT,
                tools=["calculator"],
                pricing={"inputPerMillion": 1000, "outputPerMillion": 2000},
            ),
        )
        conv = await create_conversation(http, org, agent["id"])
        events = await send_streaming(http, org, conv, "what is (2+3)*7?")
        kinds = types(events)
        assert kinds[-1] == "done"
        first_tool = kinds.index("tool_call")
        assert set(kinds[:first_tool]) == {"token"}
        assert kinds[first_tool : first_tool + 2] == ["tool_call", "tool_result"]
        call = events[first_tool][1]
        assert call["name"] == "calculator"
        assert call["arguments"] == {"expression": "(2 + 3) * 7"}
        result = events[first_tool + 1][1]
        assert result["toolCallId"] == call["toolCallId"]
        assert result["result"]["result"] == 35
        assert text_of(events) == "Let me compute that.\n\nThe answer is 35."
        done = events[-1][1]
        assert done["usage"]["total"] == done["usage"]["prompt"] + done["usage"]["completion"]
        assert done["usage"]["completion"] > 0
        assert done["cost"] > 0
        ids = [e[0] for e in events]
        assert ids == sorted(ids)

        conversation = (await http.get(f"/api/conversations/{conv}", headers=auth(org))).json()
        roles = [m["role"] for m in conversation["messages"]]
        assert roles == ["user", "assistant", "tool", "assistant"]
        # The stream set the turns apart; the stored messages are the model's own text.
        assert conversation["messages"][1]["content"] == "Let me compute that."
        assert conversation["messages"][-1]["content"] == "The answer is 35."

        runs = (await http.get("/api/runs", headers=auth(org))).json()
        assert len(runs) == 1
        run = runs[0]
        assert run["status"] == "completed"
        assert run["result"] == "The answer is 35."
        assert run["tokenUsage"] == done["usage"]
        assert run["cost"] == done["cost"]
        assert run["workflowUrl"].endswith(f"/workflows/run-{run['id']}")
        assert [c["name"] for c in run["toolCalls"]] == ["calculator"]

        # Tokens never enter the workflow history: two model calls and a tool are a few dozen events.
        history = await temporal_client.get_workflow_handle(f"run-{run['id']}").fetch_history()
        assert len(history.events) < 40
        # The run can be found in the Temporal UI by agent, conversation and (current) status.
        query = (
            f'DeeploydAgentId = "{agent["id"]}" AND DeeploydConversationId = "{conv}" '
            'AND DeeploydStatus = "completed"'
        )
        for _ in range(50):
            found = [w.id async for w in temporal_client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
        assert found == [f"run-{run['id']}"]


async def test_tool_loop_is_bounded_and_tool_errors_reach_the_model(
    api: RunningApi, org: Org, worker: Services
) -> None:
    looping = [{"toolCalls": [{"name": "calculator", "arguments": {"expression": "1 +"}}]}] * 12
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(http, org, scripted_agent(looping, tools=["calculator"]))
        conv = await create_conversation(http, org, agent["id"])
        events = await send_streaming(http, org, conv, "loop forever")
        assert events[-1][1]["type"] == "error"
        assert events[-1][1]["code"] == "max_iterations"
        results = [e[1]["result"] for e in events if e[1]["type"] == "tool_result"]
        assert len(results) == 10  # MAX_TOOL_ROUNDS
        assert all("error" in r for r in results)  # a bad expression is told to the model
        runs = (await http.get("/api/runs", headers=auth(org))).json()
        assert runs[0]["status"] == "failed" and runs[0]["modelCalls"] == 11


async def test_a_long_answer_is_stored_whole_but_kept_out_of_the_workflow_history(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    answer = "".join(f"word{i:05d} " for i in range(1000))  # 10,000 characters
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": answer}]))
        conv = await create_conversation(http, org, agent["id"])
        response = await http.post(
            f"/api/conversations/{conv}/messages",
            params={"wait": "true"},
            json={"content": "a lot"},
            headers=auth(org),
        )
        assert response.json()["message"]["content"] == answer
        run_id = response.json()["runId"]
        run = (await http.get(f"/api/runs/{run_id}", headers=auth(org))).json()
        assert run["result"] == answer
    outcome = await temporal_client.get_workflow_handle(f"run-{run_id}").result()
    assert outcome["status"] == "completed"
    assert answer.startswith(outcome["text"]) and len(outcome["text"]) == 4000
