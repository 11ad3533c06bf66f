"""`client.conversations`: talk to an agent, streamed token by token.

    async for event in client.conversations.send_message_stream(
        conversation_id=conv["id"], content="Explain quantum computing"
    ):
        if event.type == "token":
            print(event.token, end="")
        elif event.type == "done":
            print("\\nTokens used:", event.usage.total)

If the connection drops mid-answer the stream resumes by itself (GET /api/runs/{id}/stream with
Last-Event-ID), so every token arrives once, in order.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from deeployd.sdk.agent_events import RUN_END_TYPES, AgentEvent
from deeployd.sdk.resource import Resource, api_error
from deeployd.sdk.sse import parse_sse


class Conversations(Resource):
    async def create(
        self, agent_id: str, *, title: str | None = None, multitask: str | None = None
    ) -> dict[str, Any]:
        """`multitask`: "enqueue" (default), "reject" or "interrupt"."""
        body: dict[str, Any] = {"agentId": agent_id}
        if title is not None:
            body["title"] = title
        if multitask is not None:
            body["multitask"] = multitask
        return await self._object("POST", "/api/conversations", json=body)

    async def get(self, conversation_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/api/conversations/{conversation_id}")

    async def list(self, *, agent_id: str | None = None) -> list[dict[str, Any]]:
        params = {"agentId": agent_id} if agent_id else None
        return await self._objects("GET", "/api/conversations", params=params)

    async def delete(self, conversation_id: str) -> None:
        await self._client.request("DELETE", f"/api/conversations/{conversation_id}")

    async def messages(self, conversation_id: str) -> builtins.list[dict[str, Any]]:
        return await self._objects("GET", f"/api/conversations/{conversation_id}/messages")

    async def send_message(
        self, conversation_id: str, content: str, *, wait: bool = False
    ) -> dict[str, Any]:
        """Start a run: `{runId}` at once, or with `wait=True` the final answer."""
        return await self._object(
            "POST",
            f"/api/conversations/{conversation_id}/messages",
            params={"wait": "true"} if wait else None,
            json={"content": content},
            timeout=httpx.Timeout(10, read=None) if wait else None,
        )

    async def send_message_stream(
        self, *, conversation_id: str, content: str
    ) -> AsyncIterator[AgentEvent]:
        """Send a message and stream its run: token, tool_call, tool_result, approval_required,
        then done or error."""
        run_id: str | None = None
        last_id: int | None = None
        try:
            async with self._client.http.stream(
                "POST",
                f"/api/conversations/{conversation_id}/messages",
                params={"stream": "true"},
                json={"content": content},
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(10, read=None),
            ) as response:
                if response.status_code >= 400:
                    raise api_error(response.status_code, await response.aread())
                run_id = response.headers.get("x-run-id")
                async for event_id, data, _retry in parse_sse(response.aiter_lines()):
                    if data is None:
                        continue
                    event = AgentEvent(int(event_id) if event_id else None, json.loads(data))
                    if event.is_control:
                        break  # e.g. slow_consumer: resume below from last_id
                    last_id = event.id
                    yield event
                    if event.type in RUN_END_TYPES:
                        return
        except httpx.HTTPError:
            if run_id is None:
                raise
        if run_id is None:
            return
        # The connection ended early: pick the run up where we left it.
        async for event in self._client.runs.stream(run_id, last_event_id=last_id or 0):
            yield event

    async def stream(
        self, conversation_id: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[AgentEvent]:
        """Attach to the conversation's current (or latest) run, like a browser EventSource."""
        async for event in self._client.stream(
            f"/api/conversations/{conversation_id}/messages",
            params={"stream": "true"},
            last_event_id=last_event_id,
            stop_types=RUN_END_TYPES,
        ):
            yield AgentEvent.of(event)
