"""What every part of the SDK (`client.runs`, `client.agents`...) shares: the client it calls
through, typed JSON answers, and the error an HTTP failure raises."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deeployd.sdk.client import Client


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def api_error(status: int, raw: bytes) -> ApiError:
    """The error for a failed response: its JSON body, or its text when it is not JSON."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return ApiError(status, body)


def given(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that were given: a body or query without its unset (None or empty) options."""
    return {key: value for key, value in fields.items() if value is not None and value != ""}


class Resource:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request answered with a JSON object."""
        result: dict[str, Any] = await self._client.request(method, path, **kwargs)
        return result

    async def _objects(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A request answered with a JSON list of objects."""
        result: list[dict[str, Any]] = await self._client.request(method, path, **kwargs)
        return result
