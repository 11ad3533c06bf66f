"""Human in the loop: approve, reject, approval timeout; cancellation."""

from __future__ import annotations

import asyncio

import httpx
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus

from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    run_events,
    scripted_agent,
    send,
    text_of,
    types,
    wait_status,
)
from tests.conftest import Org, RunningApi

APPROVAL_SCRIPT = [
    {"text": "I need the time.", "toolCalls": [{"name": "current_time", "arguments": {}}]},
    {"text": "Tool said: {{lastToolResult}}"},
]


async def _approval_run(http: httpx.AsyncClient, org: Org, **agent_extra) -> tuple[str, str]:
    agent = await create_agent(
        http,
        org,
        scripted_agent(
            APPROVAL_SCRIPT,
            tools=["current_time", "calculator"],
            approval_required=["current_time"],
            **agent_extra,
        ),
    )
    conv = await create_conversation(http, org, agent["id"])
    run_id = await send(http, org, conv, "what time is it?")
    events = await run_events(http, org, run_id, until={"approval_required"})
    assert types(events)[-1] == "approval_required"
    return run_id, events[-1][1]["toolCallId"]


async def test_approved_tool_call_runs_and_the_run_completes(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        run_id, call_id = await _approval_run(http, org)
        run = await wait_status(http, org, run_id, {"input-required"})
        assert run["pendingApprovals"] == [
            {"toolCallId": call_id, "name": "current_time", "arguments": {}}
        ]
        wrong = await http.post(
            f"/api/runs/{run_id}/approve",
            json={"toolCallId": "call_nope", "approved": True},
            headers=auth(org),
        )
        assert wrong.status_code == 409, wrong.text
        assert "call_nope" in wrong.json()["detail"]
        ok = await http.post(
            f"/api/runs/{run_id}/approve",
            json={"toolCallId": call_id, "approved": True},
            headers=auth(org),
        )
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"runId": run_id, "toolCallId": call_id, "approved": True}
        events = await run_events(http, org, run_id)
        kinds = types(events)
        assert kinds[-1] == "done"
        result = next(e[1] for e in events if e[1]["type"] == "tool_result")
        assert "error" not in result["result"]
        run = await wait_status(http, org, run_id, {"completed"})
        assert run["toolCalls"][0]["status"] == "completed"
        again = await http.post(
            f"/api/runs/{run_id}/approve",
            json={"toolCallId": call_id, "approved": True},
            headers=auth(org),
        )
        assert again.status_code == 409


async def test_rejected_tool_call_is_fed_back_to_the_model(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        run_id, call_id = await _approval_run(http, org)
        response = await http.post(
            f"/api/runs/{run_id}/approve",
            json={"toolCallId": call_id, "approved": False, "comment": "not now"},
            headers=auth(org),
        )
        assert response.status_code == 200, response.text
        events = await run_events(http, org, run_id)
        result = next(e[1] for e in events if e[1]["type"] == "tool_result")
        assert result["result"]["approved"] is False
        assert result["result"]["comment"] == "not now"
        # The model's next turn saw the rejection as the tool's result.
        assert "not approved" in text_of(events)
        run = await wait_status(http, org, run_id, {"completed"})
        assert run["toolCalls"][0]["status"] == "rejected"


async def test_approval_timeout_rejects_by_default(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        run_id, _ = await _approval_run(http, org, approvalTimeoutMs=1000)
        events = await run_events(http, org, run_id)
        result = next(e[1] for e in events if e[1]["type"] == "tool_result")
        assert result["result"]["approved"] is False
        assert "timeout" in result["result"]["comment"]
        assert types(events)[-1] == "done"


async def test_cancel_stops_the_model_stream_and_ends_the_run_cancelled(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    words = [f"w{i} " for i in range(400)]
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http, org, scripted_agent([{"text": "".join(words)}], token_delay_ms=20)
        )
        conv = await create_conversation(http, org, agent["id"])
        run_id = await send(http, org, conv, "talk")
        first = await run_events(http, org, run_id, until={"token"})
        assert first[-1][1]["token"] == "w0 "
        response = await http.post(f"/api/runs/{run_id}/cancel", headers=auth(org))
        assert response.status_code == 202, response.text
        events = await run_events(http, org, run_id)
        assert events[-1][1] == {
            "type": "error",
            "message": "the run was cancelled",
            "code": "cancelled",
        }
        streamed = text_of(events)
        assert words[0] in streamed and len(streamed) < len("".join(words))
        run = await wait_status(http, org, run_id, {"cancelled"})
        assert run["completedAt"] is not None
        handle = temporal_client.get_workflow_handle(f"run-{run_id}")
        for _ in range(100):  # the workflow closes just after the row is written
            status = (await handle.describe()).status
            if status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.05)
        assert status == WorkflowExecutionStatus.CANCELED  # shown as such in the Temporal UI
        # Nothing more is emitted after the end of the stream: the provider stream was closed.
        await asyncio.sleep(0.5)
        after = await run_events(http, org, run_id)
        assert text_of(after) == streamed
        again = await http.post(f"/api/runs/{run_id}/cancel", headers=auth(org))
        assert again.status_code == 409
