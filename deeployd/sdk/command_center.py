"""`client.command_center`: the organisation's live run events, active runs, alert rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from deeployd.sdk.agent_events import AgentEvent
from deeployd.sdk.agents import camel_body
from deeployd.sdk.resource import Resource


class CommandCenter(Resource):
    async def stream(
        self,
        *,
        agent_ids: Iterable[str] | None = None,
        event_types: Iterable[str] | None = None,
        last_event_id: int | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """`run:*` and `alert:*` events as they happen (reconnects and resumes on its own)."""
        params: dict[str, str] = {}
        if agent_ids:
            params["agentIds"] = ",".join(agent_ids)
        if event_types:
            params["eventTypes"] = ",".join(event_types)
        async for event in self._client.stream(
            "/api/command-center/stream", params=params, last_event_id=last_event_id
        ):
            yield AgentEvent.of(event)

    async def live_runs(self) -> list[dict[str, Any]]:
        return await self._objects("GET", "/api/command-center/runs/live")

    async def create_alert_rule(self, **fields: Any) -> dict[str, Any]:
        """e.g. `create_alert_rule(name=..., metric="run_cost", comparator="gt", threshold=1)`."""
        return await self._object(
            "POST", "/api/command-center/alert-rules", json=camel_body(fields)
        )

    async def list_alert_rules(self) -> list[dict[str, Any]]:
        return await self._objects("GET", "/api/command-center/alert-rules")

    async def update_alert_rule(self, rule_id: str, **fields: Any) -> dict[str, Any]:
        return await self._object(
            "PATCH", f"/api/command-center/alert-rules/{rule_id}", json=camel_body(fields)
        )

    async def delete_alert_rule(self, rule_id: str) -> None:
        await self._client.request("DELETE", f"/api/command-center/alert-rules/{rule_id}")

    async def alerts(self, *, status: str | None = None) -> list[dict[str, Any]]:
        return await self._objects(
            "GET", "/api/command-center/alerts", params={"status": status} if status else None
        )
