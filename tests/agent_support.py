"""Helpers shared by the agent-run and Command Center tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from deeployd.sdk.sse import parse_sse
from tests.conftest import Org

END = {"done", "error"}


def auth(org: Org) -> dict[str, str]:
    return {"Authorization": f"Bearer {org.admin_key}"}


def scripted_agent(
    script: list[dict[str, Any]],
    *,
    tools: list[str] | None = None,
    approval_required: list[str] | None = None,
    token_delay_ms: float = 0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": extra.pop("name", "test agent"),
        "provider": "scripted",
        "model": "scripted",
        "tools": tools or [],
        "approvalRequired": approval_required or [],
        "providerOptions": {"script": script, "tokenDelayMs": token_delay_ms},
        **extra,
    }


async def create_agent(http: httpx.AsyncClient, org: Org, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post("/api/agents", json=body, headers=auth(org))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_conversation(
    http: httpx.AsyncClient, org: Org, agent_id: str, **extra: Any
) -> str:
    response = await http.post(
        "/api/conversations", json={"agentId": agent_id, **extra}, headers=auth(org)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def read_sse(
    response: httpx.Response, *, until: set[str] = END, limit: int | None = None
) -> list[tuple[int | None, dict[str, Any]]]:
    """Read data events from an open SSE response until one of `until` (or `limit` events)."""
    assert response.status_code == 200, await response.aread()
    events: list[tuple[int | None, dict[str, Any]]] = []
    async for event_id, data, _retry in parse_sse(response.aiter_lines()):
        if data is None:
            continue
        event = json.loads(data)
        events.append((int(event_id) if event_id else None, event))
        if event.get("type") in until or (limit is not None and len(events) >= limit):
            break
    return events


async def send_streaming(
    http: httpx.AsyncClient, org: Org, conversation_id: str, content: str, timeout: float = 30
) -> list[tuple[int | None, dict[str, Any]]]:
    async with http.stream(
        "POST",
        f"/api/conversations/{conversation_id}/messages",
        params={"stream": "true"},
        json={"content": content},
        headers=auth(org),
        timeout=httpx.Timeout(timeout),
    ) as response:
        return await asyncio.wait_for(read_sse(response), timeout)


async def send(http: httpx.AsyncClient, org: Org, conversation_id: str, content: str) -> str:
    response = await http.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": content},
        headers=auth(org),
    )
    assert response.status_code == 202, response.text
    return str(response.json()["runId"])


async def run_events(
    http: httpx.AsyncClient,
    org: Org,
    run_id: str,
    *,
    until: set[str] = END,
    timeout: float = 30,
    last_event_id: int | None = None,
) -> list[tuple[int | None, dict[str, Any]]]:
    headers = auth(org)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with http.stream(
        "GET", f"/api/runs/{run_id}/stream", headers=headers, timeout=httpx.Timeout(timeout)
    ) as response:
        return await asyncio.wait_for(read_sse(response, until=until), timeout)


async def wait_status(
    http: httpx.AsyncClient, org: Org, run_id: str, statuses: set[str], timeout: float = 30
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await http.get(f"/api/runs/{run_id}", headers=auth(org))
        assert response.status_code == 200, response.text
        body = dict(response.json())
        if body["status"] in statuses:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"run {run_id} stayed {body['status']}, wanted {statuses}")
        await asyncio.sleep(0.1)


def types(events: list[tuple[int | None, dict[str, Any]]]) -> list[str]:
    return [e[1]["type"] for e in events]


def text_of(events: list[tuple[int | None, dict[str, Any]]]) -> str:
    return "".join(e[1]["token"] for e in events if e[1]["type"] == "token")
