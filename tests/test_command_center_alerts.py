"""Windowed alert rules clear when their window passes (the sweep Schedule), with no new run."""

from __future__ import annotations

import asyncio

import httpx
from temporalio.client import Client as TemporalClient

from deeployd.agents.alerts import sweep_schedule_id
from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    read_sse,
    scripted_agent,
    send,
    wait_status,
)
from tests.conftest import Org, RunningApi


async def test_windowed_rule_triggers_on_a_failure_and_resolves_when_the_window_passes(
    api: RunningApi, org: Org, worker: Services, temporal_client: TemporalClient
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent([{"error": {"message": "boom", "code": "bad_request"}}]),
        )

        async def listen() -> list[dict]:
            async with http.stream(
                "GET",
                "/api/command-center/stream",
                params={"eventTypes": "alert:triggered,alert:resolved"},
                headers=auth(org),
                timeout=60,
            ) as response:
                return [e[1] for e in await read_sse(response, until={"alert:resolved"})]

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.3)
        rule = await http.post(
            "/api/command-center/alert-rules",
            json={
                "name": "failures",
                "metric": "runs_failed",
                "comparator": "gte",
                "threshold": 1,
                "windowMs": 2000,
            },
            headers=auth(org),
        )
        assert rule.status_code == 201, rule.text
        run_id = await send(http, org, await create_conversation(http, org, agent["id"]), "go")
        await wait_status(http, org, run_id, {"failed"})
        await asyncio.sleep(2.2)  # the failure leaves the window; nothing else happens
        schedule = temporal_client.get_schedule_handle(sweep_schedule_id(api.settings.task_queue))
        await schedule.trigger()
        events = await asyncio.wait_for(listener, 30)
        assert [e["type"] for e in events] == ["alert:triggered", "alert:resolved"]
        triggered, resolved = events[0]["alert"], events[1]["alert"]
        assert triggered["value"] == 1 and triggered["runId"] == run_id
        assert resolved["id"] == triggered["id"] and resolved["resolvedValue"] == 0
        rules = (await http.get("/api/command-center/alert-rules", headers=auth(org))).json()
        assert [(r["name"], r["state"]) for r in rules] == [("failures", "ok")]
        alerts = (await http.get("/api/command-center/alerts", headers=auth(org))).json()
        assert [a["status"] for a in alerts] == ["resolved"]
