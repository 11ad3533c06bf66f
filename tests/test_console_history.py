"""The Command Center stream's `history`: a new reader first gets the last N events of its own
organisation (matching its filters), a reconnecting reader's Last-Event-ID wins, N is bounded."""

from __future__ import annotations

import asyncio

import httpx

from deeployd.services import Services
from tests.agent_support import auth, read_sse
from tests.conftest import Org, RunningApi, make_org


async def publish(services: Services, org: Org, count: int, agent_id: str = "agt_a") -> list[int]:
    return [
        await services.publisher.publish(
            org.id, f"org:{org.id}", "run:progress", {"runId": "run_x", "agentId": agent_id, "n": n}
        )
        for n in range(count)
    ]


async def first_events(
    http: httpx.AsyncClient, org: Org, count: int, **params: str | int
) -> list[tuple[int | None, dict[str, object]]]:
    async with http.stream(
        "GET", "/api/command-center/stream", params=params, headers=auth(org), timeout=10
    ) as response:
        return await asyncio.wait_for(read_sse(response, until=set(), limit=count), 10)


async def test_history_replays_the_last_events_of_the_org_then_resumes_by_id(
    api: RunningApi, org: Org, worker: Services
) -> None:
    other = await make_org(api.settings)
    mine = await publish(worker, org, 5)
    await publish(worker, other, 3)  # newer, but another organisation's
    other_agent = await publish(worker, org, 2, agent_id="agt_b")
    async with httpx.AsyncClient(base_url=api.url) as http:
        seeded = await first_events(http, org, 3, history=3)
        assert [event_id for event_id, _ in seeded] == [*mine[-1:], *other_agent]

        # Filters apply before counting: the last three events of agent a.
        only_a = await first_events(http, org, 3, history=3, agentIds="agt_a")
        assert [event_id for event_id, _ in only_a] == mine[-3:]

        # A reader that resumes gets what follows its id, whatever `history` says.
        resumed = await first_events(http, org, 2, history=3, lastEventId=mine[1])
        assert [event_id for event_id, _ in resumed] == mine[2:4]

        too_many = await http.get(
            "/api/command-center/stream", params={"history": 501}, headers=auth(org)
        )
        assert too_many.status_code == 422
        assert too_many.json()["errors"] == [
            "query.history: Input should be less than or equal to 500"
        ]
