"""`client.runs`: find runs, follow one, approve its tool calls, cancel it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from deeployd.sdk.agent_events import RUN_END_TYPES, AgentEvent
from deeployd.sdk.resource import Resource, given


class Runs(Resource):
    async def get(self, run_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/api/runs/{run_id}")

    async def list(
        self,
        *,
        agent_id: str | None = None,
        conversation_id: str | None = None,
        status: str | None = None,
        since: datetime | str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        params = given(
            {
                "limit": limit,
                "agentId": agent_id,
                "conversationId": conversation_id,
                "status": status,
                "since": since.isoformat() if isinstance(since, datetime) else since,
            }
        )
        return await self._objects("GET", "/api/runs", params=params)

    async def approve(
        self, run_id: str, tool_call_id: str, approved: bool = True, comment: str | None = None
    ) -> dict[str, Any]:
        """Approve (or, with approved=False, reject) a tool call the run waits on."""
        body: dict[str, Any] = {"toolCallId": tool_call_id, "approved": approved}
        if comment is not None:
            body["comment"] = comment
        return await self._object("POST", f"/api/runs/{run_id}/approve", json=body)

    async def reject(self, run_id: str, tool_call_id: str, comment: str | None = None) -> Any:
        return await self.approve(run_id, tool_call_id, False, comment)

    async def cancel(self, run_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/api/runs/{run_id}/cancel")

    async def stream(
        self, run_id: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[AgentEvent]:
        """The run's events from its beginning (or after `last_event_id`) until done/error."""
        async for event in self._client.stream(
            f"/api/runs/{run_id}/stream",
            last_event_id=last_event_id if last_event_id is not None else 0,
            stop_types=RUN_END_TYPES,
        ):
            yield AgentEvent.of(event)
