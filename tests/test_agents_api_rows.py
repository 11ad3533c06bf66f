"""Agents, conversations, runs and alert rules over HTTP: what is refused (404/409 with the
reason) and that every listing and lookup sees the caller's organisation only."""

from __future__ import annotations

import httpx

from tests.agent_support import auth, create_agent, create_conversation, scripted_agent, send
from tests.conftest import Org, RunningApi, make_org

RULE = {"name": "failures", "metric": "runs_failed", "comparator": "gte", "threshold": 1}


async def test_what_is_in_use_cannot_be_deleted_and_what_is_gone_is_not_found(
    api: RunningApi, org: Org
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "hi"}]))
        conv = await create_conversation(http, org, agent["id"])

        in_use = await http.delete(f"/api/agents/{agent['id']}")
        assert in_use.status_code == 409
        assert in_use.json() == {"detail": "the agent has conversations; delete those first"}

        no_runs = await http.get(f"/api/conversations/{conv}/messages", params={"stream": "true"})
        assert no_runs.status_code == 404
        assert no_runs.json() == {"detail": "the conversation has no runs yet"}

        # No worker serves this test's task queue: the run stays active.
        run_id = await send(http, org, conv, "hello")
        busy = await http.delete(f"/api/conversations/{conv}")
        assert busy.status_code == 409
        assert busy.json() == {"detail": f"run {run_id} is still active; cancel it first"}
        listed = (await http.get("/api/runs", params={"conversationId": conv})).json()
        assert [r["id"] for r in listed] == [run_id]
        status = listed[0]["status"]
        assert status in ("queued", "running")
        same = (await http.get("/api/runs", params={"status": status})).json()
        assert [r["id"] for r in same] == [run_id]
        assert (await http.get("/api/runs", params={"status": "completed"})).json() == []
        live = (await http.get("/api/command-center/runs/live")).json()
        assert [r["id"] for r in live] == [run_id]
        messages = (await http.get(f"/api/conversations/{conv}")).json()["messages"]
        assert [(m["role"], m["content"]) for m in messages] == [("user", "hello")]

        other_conv = await create_conversation(http, org, agent["id"])
        assert (await http.delete(f"/api/conversations/{other_conv}")).status_code == 204
        gone = await http.get(f"/api/conversations/{other_conv}")
        assert gone.status_code == 404
        assert gone.json() == {"detail": "conversation not found"}

        rule = (await http.post("/api/command-center/alert-rules", json=RULE)).json()
        assert (
            await http.delete(f"/api/command-center/alert-rules/{rule['id']}")
        ).status_code == 204
        no_rule = await http.get(f"/api/command-center/alert-rules/{rule['id']}")
        assert no_rule.status_code == 404
        assert no_rule.json() == {"detail": "alert rule not found"}
        no_agent = await http.get("/api/agents/agt_missing")
        assert no_agent.json() == {"detail": "agent not found"}
        for path in ("/api/runs/run_missing", "/api/runs/run_missing/stream"):
            no_run = await http.get(path)
            assert (no_run.status_code, no_run.json()) == (404, {"detail": "run not found"}), path


async def test_another_organisation_sees_none_of_the_rows(api: RunningApi, org: Org) -> None:
    other = await make_org(api.settings)
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org)) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "hi"}]))
        conv = await create_conversation(http, org, agent["id"])
        run_id = await send(http, org, conv, "hello")
        rule = (await http.post("/api/command-center/alert-rules", json=RULE)).json()

        theirs = auth(other)
        for path in (
            f"/api/agents/{agent['id']}",
            f"/api/conversations/{conv}",
            f"/api/conversations/{conv}/messages",
            f"/api/runs/{run_id}",
            f"/api/command-center/alert-rules/{rule['id']}",
        ):
            assert (await http.get(path, headers=theirs)).status_code == 404, path
        for path in (
            "/api/agents",
            "/api/conversations",
            "/api/runs",
            "/api/command-center/runs/live",
            "/api/command-center/alert-rules",
            "/api/command-center/alerts",
        ):
            assert (await http.get(path, headers=theirs)).json() == [], path
        borrowed = await http.post(
            "/api/conversations", json={"agentId": agent["id"]}, headers=theirs
        )
        assert borrowed.status_code == 422
        assert borrowed.json()["errors"] == ["agentId: unknown agent"]
        assert (await http.delete(f"/api/agents/{agent['id']}", headers=theirs)).status_code == 404

        # The owner still sees everything.
        assert [a["id"] for a in (await http.get("/api/agents")).json()] == [agent["id"]]
        assert [r["id"] for r in (await http.get("/api/runs")).json()] == [run_id]
        assert [r["id"] for r in (await http.get("/api/command-center/alert-rules")).json()] == [
            rule["id"]
        ]
