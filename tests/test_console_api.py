"""The console's own endpoints: its config (providers, tools) and the pipeline check the builder
calls while a user types, which must answer exactly as creating the pipeline would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Org, RunningApi
from tests.pipeline_helpers import auth

HOOK = {"type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}}
VALID = {"plain", "chain"}
BODIES: list[dict[str, Any]] = [
    {"name": "plain", "source": {"type": "webhook"}, "destination": HOOK},
    {
        "name": "chain",
        "source": {"type": "agent_execution", "eventTypes": ["run:completed"]},
        "transforms": [
            {"type": "filter", "config": {"field": "status", "operator": "eq", "value": "ok"}},
            {"type": "window", "config": {"type": "tumbling", "size": 60000}},
        ],
        "destination": HOOK,
    },
    {
        "name": "typo",
        "source": {"type": "webhook"},
        "transforms": [{"type": "map", "config": {"expression": {"x": "concatt(a, b)"}}}],
        "destination": HOOK,
    },
    {"name": "bad source", "source": {"type": "carrier_pigeon"}, "destination": HOOK},
    {
        "name": "missing table",
        "source": {"type": "webhook"},
        "destination": {"type": "database", "config": {"table": "nowhere"}},
    },
    {
        "name": "sliding",
        "source": {"type": "schedule", "intervalMs": 500},
        "transforms": [{"type": "window", "config": {"type": "sliding", "size": 1000}}],
        "destination": {"type": "notification", "config": {"channel": "pager"}},
    },
    {"name": "", "source": {}, "destination": HOOK, "options": {"batchSize": 0}},
    {"name": "no destination", "source": {"type": "webhook"}},
]


async def test_config_lists_the_providers_and_tools_an_agent_can_use(
    api: RunningApi, org: Org
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        body = (await http.get("/api/console/config", headers=auth(org.admin_key))).json()
    assert {"openai", "anthropic", "scripted"} <= set(body["providers"])
    tools = {tool["name"]: tool["description"] for tool in body["tools"]}
    assert {"calculator", "current_time", "http_request"} <= set(tools)
    assert all(tools.values())
    assert body["transformTypes"] == ["filter", "map", "aggregate", "window", "batch"]
    assert body["destinationTypes"] == ["analytics", "database", "notification", "webhook"]


@pytest.mark.parametrize("body", BODIES, ids=[b["name"] or "empty" for b in BODIES])
async def test_validate_answers_as_create_would_and_creates_nothing(
    api: RunningApi, org: Org, body: dict[str, Any]
) -> None:
    headers = auth(org.admin_key)
    async with httpx.AsyncClient(base_url=api.url) as http:
        checked = await http.post("/api/console/pipelines/validate", json=body, headers=headers)
        assert (await http.get("/api/streaming/pipelines", headers=headers)).json()["total"] == 0
        created = await http.post("/api/streaming/pipelines", json=body, headers=headers)
    assert (checked.status_code, created.status_code) in {(204, 201), (422, 422)}, checked.text
    assert (checked.status_code == 204) == (body["name"] in VALID)
    if checked.status_code == 422:
        assert checked.json() == created.json()


async def test_validate_needs_a_key(api: RunningApi) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        answer = await http.post("/api/console/pipelines/validate", json=BODIES[0])
    assert answer.status_code == 401
