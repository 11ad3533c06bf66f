"""The Command Center stream: every event type at the right moment, filters, org isolation,
the live-runs snapshot, and alert rules."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import httpx

from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    read_sse,
    run_events,
    scripted_agent,
    send,
    wait_status,
)
from tests.conftest import REPO, Org, RunningApi, make_org

PRICED = {"inputPerMillion": 1000, "outputPerMillion": 2000}
MEMORY_SCRIPT = [
    {
        "text": "Noting that down.",
        "toolCalls": [{"name": "memory_write", "arguments": {"content": "the sky is blue"}}],
    },
    {"text": " ".join(f"word{i}" for i in range(40))},
]
FAILING_SCRIPT = [
    {"text": "Oh no", "error": {"message": "the model fell over", "code": "bad_request"}}
]


async def _listen(
    http: httpx.AsyncClient, org: Org, until: str, params: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    async with http.stream(
        "GET",
        "/api/command-center/stream",
        params=params,
        headers=auth(org),
        timeout=httpx.Timeout(60),
    ) as response:
        events = await read_sse(response, until={until})
    return [e[1] for e in events]


async def test_every_command_center_event_type_is_emitted_at_the_right_moment(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        good = await create_agent(
            http,
            org,
            scripted_agent(
                MEMORY_SCRIPT,
                tools=["memory_write"],
                token_delay_ms=15,
                pricing=PRICED,
                name="memo",
            ),
        )
        bad = await create_agent(http, org, scripted_agent(FAILING_SCRIPT, name="flaky"))
        listener = asyncio.create_task(_listen(http, org, "alert:resolved"))
        await asyncio.sleep(0.3)
        rule = await http.post(
            "/api/command-center/alert-rules",
            json={"name": "big run", "metric": "run_tokens", "comparator": "gt", "threshold": 10},
            headers=auth(org),
        )
        assert rule.status_code == 201, rule.text
        assert rule.json()["state"] == "ok"  # no runs yet: no value, the rule does not hold

        conv = await create_conversation(http, org, good["id"])
        run_id = await send(http, org, conv, "remember the sky")
        await wait_status(http, org, run_id, {"completed"})
        failing = await send(http, org, await create_conversation(http, org, bad["id"]), "hi")
        failed = await wait_status(http, org, failing, {"failed"})
        assert failed["errorCode"] == "bad_request"
        assert failed["error"] == "the model fell over"
        # The failed run used few tokens: the latest run no longer exceeds the threshold.
        events = await asyncio.wait_for(listener, 30)

    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["type"], []).append(event)
    assert set(by_type) == {
        "run:started",
        "run:status_changed",
        "run:progress",
        "run:tool_started",
        "run:tool_completed",
        "run:llm_call",
        "run:memory_op",
        "run:completed",
        "run:error",
        "alert:triggered",
        "alert:resolved",
    }
    mine = [e for e in events if e.get("runId") == run_id]
    order = [e["type"] for e in mine]
    assert order[0] == "run:started"
    assert order.index("run:tool_started") < order.index("run:memory_op")
    assert order.index("run:memory_op") < order.index("run:tool_completed")
    assert order[-2:] == ["run:status_changed", "run:completed"]
    for event in mine:
        assert event["agentId"] == good["id"]
    started = mine[0]["run"]
    assert started["id"] == run_id
    assert started["agentName"] == "memo"
    assert started["status"] == "running"
    assert started["conversationId"] == conv
    completed = mine[-1]
    assert completed["result"] == MEMORY_SCRIPT[1]["text"]
    assert completed["run"]["status"] == "completed"
    assert completed["run"]["tokenUsage"]["total"] == completed["usage"]["total"] > 10
    assert completed["cost"] > 0
    assert completed["run"]["completedAt"] is not None
    llm = [e for e in mine if e["type"] == "run:llm_call"]
    assert len(llm) == 2
    assert llm[0]["model"] == "scripted" and llm[0]["latencyMs"] >= 0
    assert llm[0]["tokens"]["completion"] > 0 and llm[0]["cost"] > 0
    progress = [e for e in mine if e["type"] == "run:progress"]
    assert all(p["tokens"] > 0 for p in progress)
    assert progress[-1]["tokens"] >= progress[0]["tokens"]
    memory = next(e for e in mine if e["type"] == "run:memory_op")
    assert memory["op"] == "write"
    error = next(e for e in events if e["type"] == "run:error")
    assert error["runId"] == failing and error["agentId"] == bad["id"]
    assert error["error"] == {"message": "the model fell over", "code": "bad_request"}
    assert error["run"]["status"] == "failed"
    triggered = by_type["alert:triggered"][0]["alert"]
    assert triggered["ruleName"] == "big run" and triggered["runId"] == run_id
    assert triggered["value"] == completed["usage"]["total"]
    resolved = by_type["alert:resolved"][0]["alert"]
    assert resolved["id"] == triggered["id"] and resolved["status"] == "resolved"


async def test_stream_is_org_scoped_and_filtered_by_agent_and_type(
    api: RunningApi, org: Org, worker: Services, settings
) -> None:
    other = await make_org(settings)
    async with httpx.AsyncClient(base_url=api.url) as http:
        first = await create_agent(http, org, scripted_agent([{"text": "one"}], name="a"))
        second = await create_agent(http, org, scripted_agent([{"text": "two"}], name="b"))
        foreign = await create_agent(http, other, scripted_agent([{"text": "x"}], name="c"))
        only_first = asyncio.create_task(
            _listen(
                http,
                org,
                "run:completed",
                {"agentIds": first["id"], "eventTypes": "run:started,run:completed"},
            )
        )
        everything_other = asyncio.create_task(_listen(http, other, "run:completed"))
        await asyncio.sleep(0.3)
        second_run = await send(http, org, await create_conversation(http, org, second["id"]), "b")
        await wait_status(http, org, second_run, {"completed"})
        first_run = await send(http, org, await create_conversation(http, org, first["id"]), "a")
        filtered = await asyncio.wait_for(only_first, 30)
        assert [(e["type"], e["runId"]) for e in filtered] == [
            ("run:started", first_run),
            ("run:completed", first_run),
        ]
        foreign_run = await send(
            http, other, await create_conversation(http, other, foreign["id"]), "x"
        )
        seen = await asyncio.wait_for(everything_other, 30)
        assert {e["runId"] for e in seen} == {foreign_run}
        assert all(e["agentId"] == foreign["id"] for e in seen)
        # Another org's run is invisible through every door.
        assert (await http.get(f"/api/runs/{first_run}", headers=auth(other))).status_code == 404
        approve = await http.post(
            f"/api/runs/{first_run}/approve",
            json={"toolCallId": "x", "approved": True},
            headers=auth(other),
        )
        assert approve.status_code == 404


async def test_live_runs_snapshot_and_alert_listing(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(
                [{"text": "wait", "toolCalls": [{"name": "current_time", "arguments": {}}]}],
                tools=["current_time"],
                approval_required=["current_time"],
            ),
        )
        conv = await create_conversation(http, org, agent["id"])
        run_id = await send(http, org, conv, "hold on")
        approval = await run_events(http, org, run_id, until={"approval_required"})
        live = (await http.get("/api/command-center/runs/live", headers=auth(org))).json()
        assert [(r["id"], r["status"]) for r in live] == [(run_id, "input-required")]
        assert live[0]["pendingApprovals"][0]["toolCallId"] == approval[-1][1]["toolCallId"]
        rule = await http.post(
            "/api/command-center/alert-rules",
            json={
                "name": "anything waiting",
                "metric": "runs_failed",
                "comparator": "gte",
                "threshold": 0,
                "windowMs": 60000,
                "agentIds": [agent["id"]],
            },
            headers=auth(org),
        )
        assert rule.status_code == 201
        assert rule.json()["state"] == "firing"
        alerts = (await http.get("/api/command-center/alerts", headers=auth(org))).json()
        assert [(a["ruleName"], a["status"]) for a in alerts] == [("anything waiting", "active")]
        bad = await http.post(
            "/api/command-center/alert-rules",
            json={"name": "x", "metric": "vibes", "comparator": "gt", "threshold": 1},
            headers=auth(org),
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0].startswith("metric:")
        await http.post(f"/api/runs/{run_id}/cancel", headers=auth(org))
        await wait_status(http, org, run_id, {"cancelled"})
        assert (await http.get("/api/command-center/runs/live", headers=auth(org))).json() == []


async def test_cli_tail_prints_command_center_events(
    api: RunningApi, org: Org, worker: Services
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deeployd.cli",
        "tail",
        "--types",
        "run:started,run:completed",
        cwd=REPO,
        env={**os.environ, "DEEPLOYD_URL": api.url, "DEEPLOYD_API_KEY": org.admin_key},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        header = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"following the Command Center" in header
        await asyncio.sleep(0.5)  # connected
        async with httpx.AsyncClient(base_url=api.url) as http:
            agent = await create_agent(http, org, scripted_agent([{"text": "hi"}], name="tailed"))
            run_id = await send(http, org, await create_conversation(http, org, agent["id"]), "x")
        lines = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode() for _ in range(2)]
    finally:
        process.kill()
        await process.wait()
    assert "run:started" in lines[0] and f"run={run_id}" in lines[0]
    assert "run:completed" in lines[1] and "tokens=" in lines[1]
