"""`client.agents`: agent CRUD. Field names may be given snake_case or camelCase."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from deeployd.sdk.client import Client


def camel_body(fields: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys to the API's camelCase (values, e.g. a script, are sent as given)."""
    return {to_camel(k) if "_" in k else k: v for k, v in fields.items()}


class Agents:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def create(self, **fields: Any) -> dict[str, Any]:
        """e.g. `create(name="helper", provider="openai", model="gpt-4o-mini", tools=[...])`."""
        result: dict[str, Any] = await self._client.request(
            "POST", "/api/agents", json=camel_body(fields)
        )
        return result

    async def get(self, agent_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.request("GET", f"/api/agents/{agent_id}")
        return result

    async def list(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._client.request("GET", "/api/agents")
        return result

    async def update(self, agent_id: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._client.request(
            "PATCH", f"/api/agents/{agent_id}", json=camel_body(fields)
        )
        return result

    async def delete(self, agent_id: str) -> None:
        await self._client.request("DELETE", f"/api/agents/{agent_id}")
