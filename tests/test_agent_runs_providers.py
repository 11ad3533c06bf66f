"""Runs through the real OpenAI and Anthropic providers, against local servers that speak
those APIs' streaming wire formats (tests/fakes)."""

from __future__ import annotations

import httpx
import pytest

from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    send_streaming,
    text_of,
    types,
    wait_status,
)
from tests.conftest import Org, RunningApi
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.openai_server import FakeOpenAI, FakeReply, FakeToolCall


@pytest.mark.parametrize(
    ("provider", "server", "model"),
    [("openai", FakeOpenAI, "gpt-4o-mini"), ("anthropic", FakeAnthropic, "claude-3-5-haiku")],
)
async def test_run_streams_through_the_provider_with_a_tool_round_trip(
    api: RunningApi, org: Org, worker: Services, provider: str, server: type, model: str
) -> None:
    replies = [
        FakeReply(
            text="Let me calculate.",
            tool_calls=[FakeToolCall(name="calculator", arguments={"expression": "6 * 7"})],
        ),
        FakeReply(text="Six times seven is 42."),
    ]
    async with server(api_key="sk-test-secret", replies=replies) as fake:
        async with httpx.AsyncClient(base_url=api.url) as http:
            secret = await http.post(
                "/api/secrets",
                json={"name": "MODEL_KEY", "value": "sk-test-secret"},
                headers=auth(org),
            )
            assert secret.status_code == 201
            agent = await create_agent(
                http,
                org,
                {
                    "name": f"{provider} agent",
                    "provider": provider,
                    "model": model,
                    "systemPrompt": "You are terse.",
                    "maxTokens": 256,
                    "tools": ["calculator"],
                    "baseUrl": fake.url,
                    "apiKey": "${secrets.MODEL_KEY}",
                },
            )
            assert "sk-test-secret" not in str(agent)
            conv = await create_conversation(http, org, agent["id"])
            events = await send_streaming(http, org, conv, "what is 6*7?")
            assert types(events)[-1] == "done", events[-1]
            assert text_of(events) == "Let me calculate.\n\nSix times seven is 42."
            call = next(e[1] for e in events if e[1]["type"] == "tool_call")
            assert call["name"] == "calculator" and call["arguments"] == {"expression": "6 * 7"}
            result = next(e[1] for e in events if e[1]["type"] == "tool_result")
            assert result["result"]["result"] == 42
            done = events[-1][1]
            assert done["usage"]["prompt"] > 0 and done["usage"]["completion"] > 0
            assert done["cost"] > 0  # a priced model
            runs = (await http.get("/api/runs", headers=auth(org))).json()
            assert runs[0]["status"] == "completed" and runs[0]["cost"] == done["cost"]
    assert len(fake.requests) == 2
    second = fake.requests[1].body
    # The model's second call carried the system prompt, the question, its tool call and result.
    dumped = str(second)
    assert "You are terse." in dumped and "what is 6*7?" in dumped and "42" in dumped


async def test_provider_auth_failure_fails_the_run_without_retrying(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with FakeOpenAI(api_key="the-right-key") as fake:
        async with httpx.AsyncClient(base_url=api.url) as http:
            await http.post(
                "/api/secrets", json={"name": "WRONG", "value": "nope"}, headers=auth(org)
            )
            agent = await create_agent(
                http,
                org,
                {
                    "name": "bad key",
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "baseUrl": fake.url,
                    "apiKey": "${secrets.WRONG}",
                },
            )
            conv = await create_conversation(http, org, agent["id"])
            events = await send_streaming(http, org, conv, "hello")
            assert events[-1][1]["type"] == "error"
            assert events[-1][1]["code"] == "auth"
            runs = (await http.get("/api/runs", headers=auth(org))).json()
            run = await wait_status(http, org, runs[0]["id"], {"failed"})
            assert run["errorCode"] == "auth"
    assert len(fake.requests) == 1  # a bad key is not retried
