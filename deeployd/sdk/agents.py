"""`client.agents`: agent CRUD. Field names may be given snake_case or camelCase."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel

from deeployd.sdk.resource import Resource


def camel_body(fields: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys to the API's camelCase (values, e.g. a script, are sent as given)."""
    return {to_camel(k) if "_" in k else k: v for k, v in fields.items()}


class Agents(Resource):
    async def create(self, **fields: Any) -> dict[str, Any]:
        """e.g. `create(name="helper", provider="openai", model="gpt-4o-mini", tools=[...])`."""
        return await self._object("POST", "/api/agents", json=camel_body(fields))

    async def get(self, agent_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/api/agents/{agent_id}")

    async def list(self) -> list[dict[str, Any]]:
        return await self._objects("GET", "/api/agents")

    async def update(self, agent_id: str, **fields: Any) -> dict[str, Any]:
        return await self._object("PATCH", f"/api/agents/{agent_id}", json=camel_body(fields))

    async def delete(self, agent_id: str) -> None:
        await self._client.request("DELETE", f"/api/agents/{agent_id}")
