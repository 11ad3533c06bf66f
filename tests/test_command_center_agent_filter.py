"""The Command Center stream's agent filter: run events of other agents are left out, alerts
(which concern a rule, not one agent) always pass — live and in the `history` a new reader
gets first."""

from __future__ import annotations

import asyncio

import httpx

from deeployd.agents import events as ev
from deeployd.services import Services
from tests.agent_support import auth, read_sse
from tests.conftest import Org, RunningApi


async def test_alerts_pass_an_agent_filter_in_history_and_live(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async def publish(event_type: str, data: dict[str, object]) -> int:
        return await worker.publisher.publish(org.id, ev.org_stream(org.id), event_type, data)

    await publish(ev.RUN_PROGRESS, {"runId": "run_a", "agentId": "agt_a"})
    mine = await publish(ev.RUN_PROGRESS, {"runId": "run_a", "agentId": "agt_a"})
    triggered = await publish(ev.ALERT_TRIGGERED, {"alert": {"id": "alt_1"}})
    await publish(ev.RUN_PROGRESS, {"runId": "run_b", "agentId": "agt_b"})
    resolved = await publish(ev.ALERT_RESOLVED, {"alert": {"id": "alt_1"}})
    await publish(ev.RUN_PROGRESS, {"runId": "run_b", "agentId": "agt_b"})

    async with (
        httpx.AsyncClient(base_url=api.url) as http,
        http.stream(
            "GET",
            "/api/command-center/stream",
            params={"agentIds": "agt_a", "history": 3},
            headers=auth(org),
            timeout=10,
        ) as response,
    ):
        reading = asyncio.create_task(read_sse(response, until=set(), limit=4))
        await publish(ev.RUN_PROGRESS, {"runId": "run_b", "agentId": "agt_b"})
        live_alert = await publish(ev.ALERT_TRIGGERED, {"alert": {"id": "alt_2"}})
        events = await asyncio.wait_for(reading, 10)

    # The last three matching events (the alerts count), then the new alert; agt_b's never.
    assert [event_id for event_id, _ in events] == [mine, triggered, resolved, live_alert]
