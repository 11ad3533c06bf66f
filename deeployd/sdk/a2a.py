"""`client.a2a`: A2A tasks through the platform's REST API (for the A2A protocol itself, use
any A2A client — e.g. the a2a-sdk's — against `/a2a/agents/<agentId>`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from deeployd.sdk.sse import StreamEvent

if TYPE_CHECKING:
    from deeployd.sdk.client import Client


class A2ATasks:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def create_task(
        self, agent_id: str, message: str | dict[str, Any], *, context_id: str | None = None
    ) -> dict[str, Any]:
        """Start a task: `message` is text or an A2A message (`{"parts": [{"text": ...}]}`)."""
        body: dict[str, Any] = {"agentId": agent_id, "message": message}
        if context_id:
            body["contextId"] = context_id
        result: dict[str, Any] = await self._client.request("POST", "/api/a2a/tasks", json=body)
        return result

    async def get_task(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.request("GET", f"/api/a2a/tasks/{task_id}")
        return result

    async def list_tasks(
        self,
        *,
        agent_id: str | None = None,
        context_id: str | None = None,
        state: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"pageSize": page_size}
        for key, value in (
            ("agentId", agent_id),
            ("contextId", context_id),
            ("state", state),
            ("pageToken", page_token),
        ):
            if value:
                params[key] = value
        result: dict[str, Any] = await self._client.request("GET", "/api/a2a/tasks", params=params)
        return result

    async def send_message(self, task_id: str, content: str) -> dict[str, Any]:
        """Answer a task waiting in `input-required`."""
        result: dict[str, Any] = await self._client.request(
            "POST", f"/api/a2a/tasks/{task_id}/messages", json={"content": content}
        )
        return result

    async def cancel_task(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.request(
            "POST", f"/api/a2a/tasks/{task_id}/cancel"
        )
        return result

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
