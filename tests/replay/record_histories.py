"""Records the workflow histories that `tests/test_workflow_replay.py` replays.

Not collected by default (the file name does not start with `test_`); run it explicitly when a
new scenario is worth pinning:

    .venv/bin/pytest -q tests/replay/record_histories.py

Each scenario drives a real run through the API (real worker, Temporal, Postgres) and saves the
finished workflow's history as JSON under `tests/replay/histories/`. Histories recorded from
an older version of a workflow must keep replaying against the current code: that is what
protects runs that are in flight while a worker is upgraded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from temporalio.client import Client as TemporalClient

from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    run_events,
    scripted_agent,
    send,
    wait_status,
)
from tests.conftest import Org, RunningApi
from tests.pipeline_helpers import HookReceiver, eventually
from tests.pipeline_helpers import auth as key_auth
from tests.test_a2a_rest import ASK_SCRIPT
from tests.test_pipelines_delivery import make_pipeline, put_secrets

HISTORIES = Path(__file__).parent / "histories"

APPROVAL_SCRIPT = [
    {"text": "I need the time.", "toolCalls": [{"name": "current_time", "arguments": {}}]},
    {
        "text": "Let me add: ",
        "toolCalls": [{"name": "calculator", "arguments": {"expression": "2+3"}}],
    },
    {"text": "Tool said: {{lastToolResult}}"},
]


async def _save(client: TemporalClient, workflow_id: str, name: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    await asyncio.wait_for(handle.result(), timeout=60)
    history = await handle.fetch_history()
    HISTORIES.mkdir(parents=True, exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())


async def _save_failed_ok(client: TemporalClient, workflow_id: str, name: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    try:
        await asyncio.wait_for(handle.result(), timeout=60)
    except Exception:  # cancelled / failed runs are scenarios too
        pass
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())


async def test_record_agent_run_with_approval_and_tools(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(
                APPROVAL_SCRIPT,
                tools=["current_time", "calculator"],
                approval_required=["current_time"],
            ),
        )
        conv = await create_conversation(http, org, agent["id"])
        run_id = await send(http, org, conv, "what time is it?")
        events = await run_events(http, org, run_id, until={"approval_required"})
        call_id = events[-1][1]["toolCallId"]
        ok = await http.post(
            f"/api/runs/{run_id}/approve",
            json={"toolCallId": call_id, "approved": True},
            headers=auth(org),
        )
        assert ok.status_code == 200, ok.text
        await wait_status(http, org, run_id, {"completed"})
    await _save(temporal_client, f"run-{run_id}", "agent_run_approval")


async def test_record_queued_run_and_approval_timeout(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(
                APPROVAL_SCRIPT,
                tools=["current_time", "calculator"],
                approval_required=["current_time"],
                approvalTimeoutMs=1000,
            ),
        )
        conv = await create_conversation(http, org, agent["id"])
        first = await send(http, org, conv, "one")
        second = await send(http, org, conv, "two")  # enqueued behind the first
        await wait_status(http, org, first, {"completed"}, timeout=30)
        await wait_status(http, org, second, {"completed"}, timeout=30)
    await _save(temporal_client, f"run-{second}", "agent_run_queued_timeout")


async def test_record_cancelled_run(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(
                APPROVAL_SCRIPT, tools=["current_time"], approval_required=["current_time"]
            ),
        )
        conv = await create_conversation(http, org, agent["id"])
        run_id = await send(http, org, conv, "cancel me")
        await wait_status(http, org, run_id, {"input-required"})
        cancelled = await http.post(f"/api/runs/{run_id}/cancel", headers=auth(org))
        assert cancelled.status_code in (200, 202), cancelled.text
        await wait_status(http, org, run_id, {"cancelled"})
    await _save_failed_ok(temporal_client, f"run-{run_id}", "agent_run_cancelled")


async def test_record_a2a_task_input_required(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient, client
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent(ASK_SCRIPT))
    task = await client.a2a.create_task(agent["id"], "weather?")
    async for event in client.a2a.stream_task(task["id"]):
        if event.type == "statusUpdate" and event.data["state"] == "input-required":
            await client.a2a.send_message(task["id"], "Paris")
    await _save(temporal_client, f"a2a-task-{task['id']}", "a2a_task_input_required")


async def test_record_a2a_task_approval_rejected(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient, client
) -> None:
    script = [
        {"toolCalls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]},
        {"text": "Result: {{lastToolResult}}"},
    ]
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(script, tools=["calculator"], approval_required=["calculator"]),
        )
    task = await client.a2a.create_task(agent["id"], "compute")
    async for event in client.a2a.stream_task(task["id"]):
        if event.type == "statusUpdate" and event.data["state"] == "input-required":
            await client.a2a.send_message(task["id"], "no, don't")
    await _save(temporal_client, f"a2a-task-{task['id']}", "a2a_task_approval_rejected")


async def test_record_a2a_task_cancelled(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient, client
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent(ASK_SCRIPT))
    task = await client.a2a.create_task(agent["id"], "weather?")
    async for event in client.a2a.stream_task(task["id"]):
        if event.type == "statusUpdate" and event.data["state"] == "input-required":
            await client.a2a.cancel_task(task["id"])
    await _save_failed_ok(temporal_client, f"a2a-task-{task['id']}", "a2a_task_cancelled")


async def test_record_pipeline_lifecycle(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with (
        HookReceiver() as hook,
        httpx.AsyncClient(base_url=api.url, headers=key_auth(org.admin_key), timeout=30) as http,
    ):
        await put_secrets(http)
        pid = await make_pipeline(http, hook.url, retry={"maxRetries": 1, "backoffMs": 100})
        base = f"/api/streaming/pipelines/{pid}"
        assert (await http.post(f"{base}/start")).status_code == 200
        first = [{"n": i, "keep": i % 2 == 0} for i in range(10)]
        assert (await http.post(f"{base}/batch", json=first)).status_code == 202
        await eventually(lambda: asyncio.sleep(0, len(hook.accepted)), lambda n: n == 5)
        checkpoint = await http.post(f"{base}/checkpoints")
        assert checkpoint.status_code == 201, checkpoint.text
        assert (await http.post(f"{base}/pause")).status_code == 200
        assert (await http.post(f"{base}/resume")).status_code == 200
        # The receiver goes down: the batch is retried, then dead-lettered.
        hook.down = True
        assert (
            await http.post(f"{base}/process", json={"n": 100, "keep": True})
        ).status_code == 202
        await eventually(
            lambda: http.get(f"{base}/metrics"), lambda r: r.json()["deadLetters"] >= 1
        )
        hook.down = False
        replay = await http.post(f"{base}/dead-letters/replay")
        assert replay.status_code == 200, replay.text
        restored = await http.post(f"{base}/checkpoints/{checkpoint.json()['id']}/restore")
        assert restored.status_code == 200, restored.text
        assert (await http.post(f"{base}/stop")).status_code == 200
    await _save(temporal_client, f"pipeline-{pid}", "pipeline_lifecycle")
