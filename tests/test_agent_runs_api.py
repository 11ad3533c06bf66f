"""Agents and conversations over HTTP, the SDK and the CLI."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx

import deeployd
from deeployd.agents.demo import ensure_demo_agent
from deeployd.db import Database
from deeployd.sdk.client import ApiError
from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    read_sse,
    scripted_agent,
)
from tests.conftest import REPO, Org, RunningApi, make_org


async def test_agent_validation_names_the_bad_field(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        base = scripted_agent([{"text": "hi"}])
        cases = [
            ({"tools": ["calculator", "current_time", "foo"]}, "tools[2]: unknown tool 'foo'"),
            (
                {"provider": "skynet"},
                "provider: unknown provider 'skynet'; one of anthropic, openai, scripted",
            ),
            (
                {"tools": ["calculator"], "approvalRequired": ["http_request"]},
                "approvalRequired[0]: 'http_request' is not one of the agent's tools",
            ),
            ({"temperature": 7}, "temperature: Input should be less than or equal to 2"),
        ]
        for change, message in cases:
            response = await http.post("/api/agents", json={**base, **change})
            assert response.status_code == 422, response.text
            assert response.json()["errors"] == [message]
        raw_key = await http.post("/api/agents", json={**base, "apiKey": "sk-live-123"})
        assert raw_key.status_code == 422
        assert raw_key.json()["errors"][0].startswith("apiKey: must be a ${secrets.NAME}")
        assert "sk-live-123" not in raw_key.text
        bad_script = await http.post(
            "/api/agents",
            json={**base, "providerOptions": {"script": [{"text": "x", "toolCalls": "no"}]}},
        )
        assert bad_script.status_code == 422
        assert bad_script.json()["errors"][0].startswith("providerOptions.script[0].toolCalls:")

        created = await http.post(
            "/api/agents", json={**base, "apiKey": "${secrets.OPENAI_KEY}", "tools": ["calculator"]}
        )
        assert created.status_code == 201, created.text
        agent = created.json()
        assert agent["apiKey"] == "${secrets.OPENAI_KEY}"
        patched = await http.patch(f"/api/agents/{agent['id']}", json={"tools": ["nope"]})
        assert patched.status_code == 422
        assert patched.json()["errors"] == ["tools[0]: unknown tool 'nope'"]
        patched = await http.patch(f"/api/agents/{agent['id']}", json={"description": "calc"})
        assert patched.json()["description"] == "calc"
        assert patched.json()["tools"] == ["calculator"]
        other = await make_org(api.settings)
        assert (
            await http.get(f"/api/agents/{agent['id']}", headers=auth(other))
        ).status_code == 404
        no_conv = await http.post("/api/conversations", json={"agentId": "agt_missing"})
        assert no_conv.json()["errors"] == ["agentId: unknown agent"]
        assert (await http.delete(f"/api/agents/{agent['id']}")).status_code == 204


async def test_wait_returns_the_final_message(api: RunningApi, org: Org, worker: Services) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "All good."}]))
        conv = await create_conversation(http, org, agent["id"], title="t")
        response = await http.post(
            f"/api/conversations/{conv}/messages",
            params={"wait": "true"},
            json={"content": "status?"},
            headers=auth(org),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed"
        assert body["message"] == {"role": "assistant", "content": "All good."}
        assert body["usage"]["completion"] == 2
        listed = (await http.get("/api/conversations", headers=auth(org))).json()
        assert [c["id"] for c in listed] == [conv]
        # A browser's EventSource: GET only, the key in the query string; replays the last run.
        async with http.stream(
            "GET",
            f"/api/conversations/{conv}/messages",
            params={"stream": "true", "access_token": org.admin_key},
        ) as response:
            replay = await read_sse(response)
        assert [e[1]["type"] for e in replay] == ["token", "token", "done"]
        run_id = body["runId"]
        since = (await http.get(f"/api/runs/{run_id}", headers=auth(org))).json()["createdAt"]
        for params, expected in [
            ({"since": since}, [run_id]),
            ({"since": "2999-01-01T00:00:00Z"}, []),
            ({"status": "completed", "agentId": agent["id"]}, [run_id]),
            ({"status": "failed"}, []),
        ]:
            found = (await http.get("/api/runs", params=params, headers=auth(org))).json()
            assert [r["id"] for r in found] == expected, params


async def test_sdk_streams_typed_events_and_approves(
    api: RunningApi, org: Org, worker: Services, client: deeployd.Client
) -> None:
    agent = await client.agents.create(
        **scripted_agent(
            [
                {"text": "Checking.", "toolCalls": [{"name": "current_time", "arguments": {}}]},
                {"text": "It is {{lastToolResult.iso}}."},
            ],
            tools=["current_time"],
            approval_required=["current_time"],
        )
    )
    conv = await client.conversations.create(agent["id"])
    cc = client.command_center.stream(agent_ids=[agent["id"]], event_types=["run:completed"])
    completed = asyncio.create_task(anext(aiter(cc)))
    await asyncio.sleep(0.3)
    text = ""
    async for event in client.conversations.send_message_stream(
        conversation_id=conv["id"], content="time?"
    ):
        if event.type == "token":
            text += event.token
        elif event.type == "approval_required":
            assert event.name == "current_time"
            await client.runs.approve(event.run_id, event.tool_call_id, True)
        elif event.type == "done":
            usage_total = event.usage.total
    assert text.startswith("Checking.\n\nIt is ")
    assert usage_total > 0
    done = await asyncio.wait_for(completed, 30)
    assert done.type == "run:completed" and done.run.agent_name == agent["name"]
    runs = await client.runs.list(agent_id=agent["id"])
    assert [r["status"] for r in runs] == ["completed"]
    run = await client.runs.get(runs[0]["id"])
    assert run["toolCalls"][0]["status"] == "completed"
    replay = [e.type async for e in client.runs.stream(run["id"])]
    assert replay[-1] == "done" and "approval_required" in replay
    try:
        await client.runs.cancel(run["id"])
    except ApiError as exc:
        assert exc.status == 409
    else:
        raise AssertionError("cancelling a finished run must fail")


async def test_cli_chat_streams_the_demo_agent_and_answers_the_approval(
    api: RunningApi, org: Org, worker: Services
) -> None:
    db = Database(api.settings.require_database_url(), pool_size=1)
    await db.open()
    try:
        demo = await ensure_demo_agent(db, org.id)
        again = await ensure_demo_agent(db, org.id)
    finally:
        await db.close()
    assert again.id == demo.id  # idempotent
    fast = {"providerOptions": {**demo.provider_options, "tokenDelayMs": 0}}
    async with httpx.AsyncClient(base_url=api.url) as http:
        await http.patch(f"/api/agents/{demo.id}", json=fast, headers=auth(org))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deeployd.cli",
        "chat",
        "demo",
        "-m",
        "show me",
        "--no",
        cwd=REPO,
        env={**os.environ, "DEEPLOYD_URL": api.url, "DEEPLOYD_API_KEY": org.admin_key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert "calculator" in text and "35" in text
    # The next turn starts right under the tool lines (its leading paragraph break is dropped).
    assert '"(2 + 3) * 7"}\nThe calculator says 35.' in text
    assert "approval needed: http_request" in text
    assert "Done: (2 + 3) * 7 = 35" in text
    assert "tokens, $" in text
