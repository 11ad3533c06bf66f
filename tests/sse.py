"""Test helpers that read SSE the way a plain HTTP client would."""

from __future__ import annotations

import json
from typing import Any

import httpx

from deeployd.sdk.sse import parse_sse


async def collect(
    http: httpx.AsyncClient,
    path: str,
    *,
    count: int,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> list[tuple[int | None, dict[str, Any]]]:
    """Open a stream, read `count` data events (id, data), then hang up."""
    events: list[tuple[int | None, dict[str, Any]]] = []
    async with http.stream(
        "GET", path, headers=headers, params=params, timeout=httpx.Timeout(timeout)
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for event_id, data, _retry in parse_sse(response.aiter_lines()):
            if data is None:
                continue
            events.append((int(event_id) if event_id else None, json.loads(data)))
            if len(events) >= count:
                break
    return events
