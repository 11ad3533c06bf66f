"""A2A 1.0 through the official a2a-sdk client (JSON-RPC and HTTP+JSON) against the real API
(uvicorn), the real worker and Temporal: cards, streaming, input-required, cancel,
resubscription, and a 0.3-style JSON-RPC request."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.constants import TransportProtocol

from deeployd.a2a.store import state_from_proto
from tests.agent_support import auth, create_agent, scripted_agent

ANSWER = "Forty-two is the answer, delivered to you in several streamed chunks."


def user_message(text: str, task_id: str = "", context_id: str = "") -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(
            message_id=str(uuid.uuid4()),
            role=Role.ROLE_USER,
            parts=[Part(text=text)],
            task_id=task_id,
            context_id=context_id,
        )
    )


@contextlib.asynccontextmanager
async def a2a_client(
    base_url: str, key: str, agent_id: str, binding: str = TransportProtocol.JSONRPC
) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        factory = ClientFactory(
            ClientConfig(httpx_client=http, streaming=True, supported_protocol_bindings=[binding])
        )
        client = await factory.create_from_url(f"{base_url}/a2a/agents/{agent_id}")
        try:
            yield client
        finally:
            await client.close()


def describe(response: StreamResponse) -> tuple[str, Any]:
    kind = response.WhichOneof("payload")
    if kind == "task":
        return "task", state_from_proto(response.task.status.state)
    if kind == "status_update":
        return "status", state_from_proto(response.status_update.status.state)
    if kind == "artifact_update":
        update = response.artifact_update
        return "artifact", (
            "".join(p.text for p in update.artifact.parts),
            update.append,
            update.last_chunk,
        )
    return kind or "?", None


def states(events: list[tuple[str, Any]]) -> list[str]:
    return [value for kind, value in events if kind in ("task", "status")]


def artifact_text(events: list[tuple[str, Any]]) -> str:
    text = ""
    for kind, value in events:
        if kind == "artifact":
            chunk, append, _last = value
            text = text + chunk if append else chunk
    return text


async def collect(stream: AsyncIterator[StreamResponse]) -> list[tuple[str, Any]]:
    return [describe(r) async for r in stream]


ASK_SCRIPT = [
    {"toolCalls": [{"name": "ask_user", "arguments": {"question": "Which city?"}}]},
    {"text": "The weather in {{lastToolResult.answer}} is sunny today."},
]


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_streamed_task_completes_with_a_chunked_artifact(api, worker, org, binding):
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http, org, scripted_agent([{"text": ANSWER}], token_delay_ms=2, name="answerer")
        )
        card = await http.get(
            f"/a2a/agents/{agent['id']}/.well-known/agent-card.json", headers=auth(org)
        )
        assert card.status_code == 200
        body = card.json()
        assert body["name"] == "answerer"
        assert body["capabilities"]["streaming"] is True
        assert "apiKey" in body["securitySchemes"]
        assert (
            await http.get(f"/a2a/agents/{agent['id']}/.well-known/agent-card.json")
        ).status_code == 401

    async with a2a_client(api.url, org.admin_key, agent["id"], binding) as client:
        events = await collect(client.send_message(user_message("What is the answer?")))
    assert states(events)[0] == "submitted"
    assert states(events)[-1] == "completed"
    assert "working" in states(events)
    chunks = [value for kind, value in events if kind == "artifact"]
    assert len(chunks) >= 3, chunks  # streamed in pieces, not in one go
    assert chunks[-1][2] is True  # lastChunk
    assert all(not last for _, _, last in chunks[:-1])
    assert artifact_text(events) == ANSWER


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_input_required_then_follow_up_completes(api, worker, org, binding):
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(http, org, scripted_agent(ASK_SCRIPT, tools=["ask_user"]))
    async with a2a_client(api.url, org.admin_key, agent["id"], binding) as client:
        first = await collect(client.send_message(user_message("What's the weather?")))
        assert states(first) == ["submitted", "working", "input-required"]
        tasks = await client.list_tasks(ListTasksRequest())
        assert len(tasks.tasks) == 1
        task = tasks.tasks[0]
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert task.status.message.parts[0].text == "Which city?"

        second = await collect(
            client.send_message(user_message("Paris", task_id=task.id, context_id=task.context_id))
        )
        assert states(second)[0] == "input-required"  # the task as it was
        assert states(second)[1:] == ["working", "completed"]
        assert artifact_text(second) == "The weather in Paris is sunny today."

        done = await client.get_task(GetTaskRequest(id=task.id))
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        assert done.artifacts[0].parts[0].text == "The weather in Paris is sunny today."
        texts = [m.parts[0].text for m in done.history]
        assert texts == ["What's the weather?", "Which city?", "Paris"]

        # A message for a finished task is refused.
        with pytest.raises(Exception, match=r"ended|not waiting"):
            await collect(client.send_message(user_message("again", task_id=task.id)))


async def test_cancel_stops_the_task(api, worker, org):
    slow = [{"text": " ".join(["word"] * 400)}]
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(http, org, scripted_agent(slow, token_delay_ms=20))
    async with a2a_client(api.url, org.admin_key, agent["id"]) as client:
        stream = client.send_message(user_message("talk a lot"))
        seen: list[tuple[str, Any]] = []
        task_id = ""
        async for response in stream:
            seen.append(describe(response))
            if response.HasField("task"):
                task_id = response.task.id
            if seen[-1][0] == "artifact":
                break
        await stream.aclose()
        canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED
        again = await client.get_task(GetTaskRequest(id=task_id))
        assert again.status.state == TaskState.TASK_STATE_CANCELED
        assert not again.artifacts  # the answer was never finished
        with pytest.raises(Exception, match=r"ended|cancel"):
            await client.cancel_task(CancelTaskRequest(id=task_id))


async def test_subscribe_after_a_disconnect_sees_the_rest(api, worker, org):
    script = [{"text": " ".join(f"w{i}" for i in range(60))}]
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(http, org, scripted_agent(script, token_delay_ms=15))
    async with a2a_client(api.url, org.admin_key, agent["id"]) as client:
        stream = client.send_message(user_message("count"))
        task_id = ""
        async for response in stream:
            if response.HasField("task"):
                task_id = response.task.id
                break
        await stream.aclose()  # the caller goes away; the task goes on
        events = await collect(client.subscribe(SubscribeToTaskRequest(id=task_id)))
    assert events[0][0] == "task"
    assert states(events)[-1] == "completed"
    last = [value for kind, value in events if kind == "artifact"][-1]
    assert last[2] is True


async def test_v03_message_send_and_tasks_get(api, worker, org):
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=60) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "hello from 0.3"}]))
        response = await http.post(
            f"/a2a/agents/{agent['id']}",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {
                    "message": {
                        "kind": "message",
                        "messageId": str(uuid.uuid4()),
                        "role": "user",
                        "parts": [{"kind": "text", "text": "hi"}],
                    }
                },
            },
        )
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        assert result["kind"] == "task"
        assert result["status"]["state"] == "completed"
        assert result["artifacts"][0]["parts"][0]["text"] == "hello from 0.3"
        got = await http.post(
            f"/a2a/agents/{agent['id']}",
            json={"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": result["id"]}},
        )
        assert got.json()["result"]["status"]["state"] == "completed"

        # 0.3 non-blocking send, then `tasks/resubscribe` follows the task to its end.
        slow = await create_agent(
            http, org, scripted_agent([{"text": " ".join(["tick"] * 40)}], token_delay_ms=10)
        )
        started = await http.post(
            f"/a2a/agents/{slow['id']}",
            json={
                "jsonrpc": "2.0",
                "id": 4,
                "method": "message/send",
                "params": {
                    "message": {
                        "kind": "message",
                        "messageId": str(uuid.uuid4()),
                        "role": "user",
                        "parts": [{"kind": "text", "text": "go"}],
                    },
                    "configuration": {"blocking": False},
                },
            },
        )
        slow_task = started.json()["result"]
        assert slow_task["status"]["state"] in ("submitted", "working")
        kinds = []
        async with http.stream(
            "POST",
            f"/a2a/agents/{slow['id']}",
            json={
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tasks/resubscribe",
                "params": {"id": slow_task["id"]},
            },
        ) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])["result"]
                    kinds.append((event["kind"], event.get("status", {}).get("state")))
                    if event.get("final") or event.get("status", {}).get("state") == "completed":
                        break
        assert kinds[0][0] == "task"
        assert ("artifact-update", None) in kinds
        assert kinds[-1] == ("status-update", "completed")

        # Another organisation's key sees nothing of it.
        other = await http.post(
            f"/a2a/agents/{agent['id']}",
            json={"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": result["id"]}},
            headers={"Authorization": "Bearer nope"},
        )
        assert other.status_code == 401
