"""Agent to agent: a Deeployd agent delegating to another over A2A (`call_agent`), followed with
the SDK's `client.a2a`; and push notifications delivered to a receiver speaking plain HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from a2a.types.a2a_pb2 import (
    DeleteTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskPushNotificationConfig,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.agent_support import auth, create_agent, scripted_agent
from tests.conftest import free_port
from tests.test_a2a_protocol import a2a_client


@contextlib.asynccontextmanager
async def receiver(
    completed: asyncio.Event,
) -> AsyncIterator[tuple[str, list[tuple[dict[str, str], dict[str, Any]]]]]:
    """A webhook receiver on a free port, recording (headers, JSON body) of every POST."""
    received: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def hook(request: Request) -> Response:
        body = json.loads(await request.body())
        received.append((dict(request.headers), body))
        if body.get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED":
            completed.set()
        return Response(status_code=204)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_config=None,
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_push_notifications_carry_every_update_and_the_token(api, worker, org):
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(
            http, org, scripted_agent([{"text": "pushed answer in a few small chunks here"}])
        )
    completed = asyncio.Event()
    async with receiver(completed) as (url, received):
        async with a2a_client(api.url, org.admin_key, agent["id"]) as client:
            request = SendMessageRequest(
                message=Message(
                    message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text="go")]
                ),
                configuration=SendMessageConfiguration(
                    task_push_notification_config=TaskPushNotificationConfig(
                        url=url, token="secret-token-1"
                    )
                ),
            )
            task_id = ""
            async for response in client.send_message(request):
                if response.HasField("task"):
                    task_id = response.task.id
            await asyncio.wait_for(completed.wait(), timeout=30)
            # The push-notification-config methods see (and remove) the stored config.
            listed = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            assert [(c.url, c.token) for c in listed.configs] == [(url, "secret-token-1")]
            await client.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task_id, id=listed.configs[0].id)
            )
            listed = await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=task_id)
            )
            assert list(listed.configs) == []
    assert all(h.get("x-a2a-notification-token") == "secret-token-1" for h, _ in received)
    states = [b["statusUpdate"]["status"]["state"] for _, b in received if "statusUpdate" in b]
    assert states == ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    artifacts = [b["artifactUpdate"] for _, b in received if "artifactUpdate" in b]
    assert artifacts and artifacts[-1].get("lastChunk") is True
    assert all(b[next(iter(b))]["taskId"] == task_id for _, b in received)


async def test_an_agent_delegates_to_another_agent_over_a2a(api, worker, org, client):
    await client.put_secret("PEER_KEY", org.admin_key)
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        remote = await create_agent(
            http,
            org,
            scripted_agent([{"text": "Remote agent says the launch is at noon."}], name="remote"),
        )
        caller = await create_agent(
            http,
            org,
            scripted_agent(
                [
                    {
                        "toolCalls": [
                            {
                                "name": "call_agent",
                                "arguments": {
                                    "agentUrl": f"{api.url}/a2a/agents/{remote['id']}",
                                    "message": "When is the launch?",
                                    "apiKey": "${secrets.PEER_KEY}",
                                },
                            }
                        ]
                    },
                    {"text": "I asked a colleague: {{lastToolResult.artifacts.0.text}}"},
                ],
                tools=["call_agent"],
                name="caller",
            ),
        )

    task = await client.a2a.create_task(caller["id"], "When is the launch?")
    events = [event.data async for event in client.a2a.stream_task(task["id"])]
    assert events[0]["type"] == "task"
    assert events[-1]["type"] == "statusUpdate" and events[-1]["state"] == "completed"
    done = await client.a2a.get_task(task["id"])
    by_name = {a["name"]: a for a in done["artifacts"]}
    answer = by_name["answer"]["parts"][0]["text"]
    assert answer == "I asked a colleague: Remote agent says the launch is at noon."
    # The tool's result came back as a data artifact of the caller's task too.
    tool_result = by_name["tool:call_agent"]["parts"][0]["data"]
    assert tool_result["state"] == "completed"
    assert tool_result["artifacts"] == [
        {"name": "answer", "text": "Remote agent says the launch is at noon."}
    ]

    # The remote side is an ordinary task of the remote agent, visible as such.
    remote_tasks = await client.a2a.list_tasks(agent_id=remote["id"])
    assert [t["status"]["state"] for t in remote_tasks["tasks"]] == ["TASK_STATE_COMPLETED"]
    # The remote task's progress was streamed into the calling run's events.
    runs = await client.request("GET", "/api/runs", params={"agentId": caller["id"]})
    run_events = await client.request(
        "GET", "/api/events", params={"streams": f"run:{runs[0]['id']}", "types": "remote_task"}
    )
    assert any(item["data"].get("state") == "completed" for item in run_events["items"])
