"""`client.a2a`: A2A tasks through the platform's REST API (for the A2A protocol itself, use
any A2A client — e.g. the a2a-sdk's — against `/a2a/agents/<agentId>`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from deeployd.sdk.resource import Resource, given
from deeployd.sdk.sse import StreamEvent


class A2ATasks(Resource):
    async def create_task(
        self, agent_id: str, message: str | dict[str, Any], *, context_id: str | None = None
    ) -> dict[str, Any]:
        """Start a task: `message` is text or an A2A message (`{"parts": [{"text": ...}]}`)."""
        body = {"agentId": agent_id, "message": message, **given({"contextId": context_id})}
        return await self._object("POST", "/api/a2a/tasks", json=body)

    async def get_task(self, task_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/api/a2a/tasks/{task_id}")

    async def list_tasks(
        self,
        *,
        agent_id: str | None = None,
        context_id: str | None = None,
        state: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        params = given(
            {
                "pageSize": page_size,
                "agentId": agent_id,
                "contextId": context_id,
                "state": state,
                "pageToken": page_token,
            }
        )
        return await self._object("GET", "/api/a2a/tasks", params=params)

    async def send_message(self, task_id: str, content: str) -> dict[str, Any]:
        """Answer a task waiting in `input-required`."""
        return await self._object(
            "POST", f"/api/a2a/tasks/{task_id}/messages", json={"content": content}
        )

    async def cancel_task(self, task_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/api/a2a/tasks/{task_id}/cancel")

    async def stream_task(
        self, task_id: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[StreamEvent]:
        """`task`, then `message` / `statusUpdate` / `artifactUpdate` events until the task
        ends (reconnecting and resuming by event id on its own)."""
        stream = self._client.stream(
            f"/api/a2a/tasks/{task_id}/stream", last_event_id=last_event_id
        )
        try:
            async for event in stream:
                yield event
                if event.type == "statusUpdate" and event.data.get("final"):
                    return
        finally:
            await stream.aclose()
