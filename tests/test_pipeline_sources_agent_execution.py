"""The `agent_execution` source: run lifecycle events from the event log into pipelines, and the
docs' example pipeline `agent-events-to-analytics` end to end against a local Mixpanel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client as TemporalClient

from deeployd.pipelines.sources.router import current_event_id, route_once
from deeployd.services import Services
from tests.conftest import Org, RunningApi
from tests.fakes import serve
from tests.fakes.analytics import AnalyticsFake
from tests.fakes.slack import SlackFake
from tests.fakes.sources import create_pipeline, items, running_router, sink_destination
from tests.pipeline_helpers import auth, eventually


@pytest.fixture
async def sink() -> AsyncIterator[str]:
    async with serve(SlackFake().app) as url:
        yield url


def run_record(agent_id: str, status: str, *, total: int = 0, cost: float = 0.0) -> dict[str, Any]:
    done = status in ("completed", "failed", "cancelled")
    return {
        "id": f"run_{uuid.uuid4().hex[:12]}",
        "agentId": agent_id,
        "agentName": f"Agent {agent_id}",
        "conversationId": "conv_1",
        "status": status,
        "tokenUsage": {"prompt": total // 2, "completion": total - total // 2, "total": total},
        "cost": cost,
        "startedAt": "2026-11-24T10:00:00+00:00",
        "completedAt": "2026-11-24T10:00:05+00:00" if done else None,
        "error": "boom" if status == "failed" else None,
    }


async def publish_run(
    services: Services, org_id: str, agent_id: str, outcome: str, **kw: Any
) -> None:
    """The Command Center events of one run, in the shape agent runs publish."""
    started = run_record(agent_id, "running")
    run_id = started["id"]
    final = {**run_record(agent_id, outcome, **kw), "id": run_id}
    stream = f"org:{org_id}"
    common = {"runId": run_id, "agentId": agent_id}
    events = [
        ("run:started", {**common, "run": started}),
        (
            "run:status_changed",
            {**common, "status": "running", "previousStatus": "queued", "run": started},
        ),
        ("run:progress", {**common, "step": 1}),
        (
            "run:status_changed",
            {**common, "status": outcome, "previousStatus": "running", "run": final},
        ),
    ]
    if outcome == "completed":
        events.append(("run:completed", {**common, "result": "ok", "run": final}))
    elif outcome == "failed":
        events.append(("run:error", {**common, "error": {"message": "boom"}, "run": final}))
    await services.publisher.publish_many((org_id, stream, t, d) for t, d in events)


async def test_the_docs_example_pipeline_sends_completed_runs_to_mixpanel(
    api: RunningApi, org: Org, worker: Services, settings, temporal_client: TemporalClient
) -> None:
    mixpanel = AnalyticsFake(mixpanel_token="mp-token-from-secret")
    async with (
        serve(mixpanel.app) as mixpanel_url,
        running_router(temporal_client, settings, worker),
        httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http,
    ):
        response = await http.post(
            "/api/secrets", json={"name": "MIXPANEL_TOKEN", "value": "mp-token-from-secret"}
        )
        assert response.status_code == 201, response.text
        # The pipeline exactly as the docs write it, plus `baseUrl` pointing at the local fake.
        response = await http.post(
            "/api/streaming/pipelines",
            json={
                "name": "agent-events-to-analytics",
                "source": {"type": "agent_execution", "agentIds": ["agent-123", "agent-456"]},
                "transforms": [
                    {
                        "type": "filter",
                        "config": {"field": "status", "operator": "eq", "value": "completed"},
                    },
                    {
                        "type": "map",
                        "config": {
                            "expression": {
                                "event_type": '"agent_completion"',
                                "agent_id": "agentId",
                                "tokens": "tokenUsage.total",
                                "cost": "cost",
                                "timestamp": "completedAt",
                            }
                        },
                    },
                ],
                "destination": {
                    "type": "analytics",
                    "config": {
                        "provider": "mixpanel",
                        "projectToken": "${secrets.MIXPANEL_TOKEN}",
                        "baseUrl": mixpanel_url,
                    },
                },
            },
        )
        assert response.status_code == 201, response.text
        pipeline_id = response.json()["id"]
        response = await http.post(f"/api/streaming/pipelines/{pipeline_id}/start")
        assert response.status_code == 200, response.text

        await publish_run(worker, org.id, "agent-123", "completed", total=120, cost=0.0042)
        await publish_run(worker, org.id, "agent-456", "completed", total=80, cost=0.002)
        await publish_run(worker, org.id, "agent-456", "failed", total=10)
        await publish_run(worker, org.id, "agent-999", "completed", total=999)  # not in agentIds

        await eventually(lambda _=None: _mixpanel_count(mixpanel), lambda n: n >= 2, timeout=45)
        events = sorted(mixpanel.mixpanel.values(), key=lambda e: e["properties"]["agent_id"])
        assert [e["event"] for e in events] == ["agent_completion", "agent_completion"]
        first = events[0]["properties"]
        assert first["agent_id"] == "agent-123" and first["distinct_id"] == "agent-123"
        assert first["tokens"] == 120 and first["cost"] == 0.0042
        assert first["time"] == 1_795_514_405_000  # completedAt 2026-11-24T10:00:05Z, in ms
        assert events[1]["properties"]["tokens"] == 80
        # The project token came from the secret store, as HTTP Basic auth.
        assert all(r.headers["authorization"].startswith("Basic ") for r in mixpanel.requests)
        response = await http.get(f"/api/streaming/pipelines/{pipeline_id}/metrics")
        assert response.json()["itemsFailed"] == 0
    assert len(mixpanel.mixpanel) == 2  # one event per completed run, nothing for others


async def _mixpanel_count(fake: AnalyticsFake) -> int:
    return len(fake.mixpanel)


async def test_routing_filters_by_agent_and_type_and_is_exactly_once(
    api: RunningApi, org: Org, worker: Services, sink: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        await publish_run(worker, org.id, "agent-a", "completed")  # before the pipelines exist
        cursor = 0  # a router starting from the very beginning of the log
        by_default = await create_pipeline(
            http, org.admin_key, {"type": "agent_execution"}, sink_destination(sink)
        )
        chosen = await create_pipeline(
            http,
            org.admin_key,
            {
                "type": "agent_execution",
                "agentIds": ["agent-b"],
                "eventTypes": ["run:started", "run:completed", "run:progress"],
            },
            sink_destination(sink),
        )
        await publish_run(worker, org.id, "agent-a", "completed")
        await publish_run(worker, org.id, "agent-b", "failed")
        await publish_run(worker, org.id, "agent-b", "completed")
        high = await current_event_id(worker)
        # The log is shared with whatever else runs (other organisations' events can land between
        # two passes), so a pass reaches at least the newest id seen here.
        first = await route_once(worker, cursor, external=False)
        assert first.cursor >= high
        # A router that crashed before saving its cursor routes the same events again.
        again = await route_once(worker, cursor, external=False)
        assert again.cursor >= high

    default_items = await items(api.settings, by_default)
    # Default: every status transition once: 3 runs x (queued->running, running->outcome).
    assert [(i["agentId"], i["previousStatus"], i["status"]) for i in default_items] == [
        ("agent-a", "queued", "running"),
        ("agent-a", "running", "completed"),
        ("agent-b", "queued", "running"),
        ("agent-b", "running", "failed"),
        ("agent-b", "queued", "running"),
        ("agent-b", "running", "completed"),
    ]
    assert all(i["eventType"] == "run:status_changed" for i in default_items)
    assert set(default_items[0]) >= {
        "id",
        "agentId",
        "agentName",
        "conversationId",
        "status",
        "tokenUsage",
        "cost",
        "startedAt",
        "completedAt",
        "error",
        "eventType",
    }
    chosen_items = await items(api.settings, chosen)
    assert [i["eventType"] for i in chosen_items] == [
        "run:started",
        "run:progress",
        "run:started",
        "run:progress",
        "run:completed",
    ]
    assert chosen_items[1]["agentId"] == "agent-b" and chosen_items[1]["step"] == 1


async def test_a_pipeline_of_another_org_gets_nothing(
    api: RunningApi, org: Org, worker: Services, sink: str
) -> None:
    from tests.conftest import make_org

    other = await make_org(api.settings)
    async with httpx.AsyncClient(base_url=api.url) as http:
        cursor = await current_event_id(worker)
        theirs = await create_pipeline(
            http, other.admin_key, {"type": "agent_execution"}, sink_destination(sink)
        )
        await publish_run(worker, org.id, "agent-a", "completed")
        await route_once(worker, cursor, external=False)
    assert await items(api.settings, theirs) == []


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (
            {"type": "agent_execution", "agentIds": "agent-1"},
            "source.agentIds: Input should be a valid list",
        ),
        (
            {"type": "agent_execution", "eventTypes": ["run:finished"]},
            "source.eventTypes[0]: Input should be",
        ),
        (
            {"type": "agent_execution", "agentId": ["x"]},
            "source.agentId: Extra inputs are not permitted",
        ),
    ],
)
async def test_bad_source_config_is_a_422_naming_the_field(
    api: RunningApi, org: Org, source: dict[str, Any], error: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        response = await http.post(
            "/api/streaming/pipelines",
            json={"name": "bad", "source": source, "destination": sink_destination("http://x")},
        )
    assert response.status_code == 422
    assert any(e.startswith(error) for e in response.json()["errors"]), response.json()


async def router_running(client: TemporalClient, workflow_id: str) -> None:
    """Wait until the worker has started the router and its first pass is under way."""

    async def pending() -> list[str]:
        try:
            described = await client.get_workflow_handle(workflow_id).describe()
        except Exception:
            return []
        return [a.activity_type.name for a in described.raw_description.pending_activities]

    await eventually(pending, lambda names: "route_sources" in names, timeout=30)


async def test_routing_survives_a_worker_killed_mid_stream_without_loss_or_duplicates(
    api: RunningApi, org: Org, sink: str, settings, temporal_client: TemporalClient
) -> None:
    from deeployd.pipelines.sources.runtime import router_workflow_id
    from tests.conftest import worker_process

    publisher = await Services.open(settings, with_temporal=False)
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
            with worker_process(settings) as first:  # starts the router, like production
                await router_running(temporal_client, router_workflow_id(settings.task_queue))
                pipeline_id = await create_pipeline(
                    http, org.admin_key, {"type": "agent_execution"}, sink_destination(sink)
                )
                for _ in range(20):
                    await publish_run(publisher, org.id, "agent-k", "completed")
                await eventually(
                    lambda: items(settings, pipeline_id), lambda v: len(v) >= 10, timeout=30
                )
                for _ in range(20):
                    await publish_run(publisher, org.id, "agent-k", "completed")
                first.kill()  # SIGKILL: no graceful anything
                first.wait()
            with worker_process(settings):
                for _ in range(20):
                    await publish_run(publisher, org.id, "agent-k", "failed")
                log = await eventually(
                    lambda: items(settings, pipeline_id), lambda v: len(v) >= 120, timeout=60
                )
        await __import__("asyncio").sleep(1.5)  # anything extra would have arrived by now
        log = await items(settings, pipeline_id)
        assert len(log) == 120  # 60 runs x 2 status transitions, each exactly once
        assert len({(i["id"], i["status"]) for i in log}) == 120
        assert sum(1 for i in log if i["status"] == "failed") == 20
    finally:
        await publisher.close()
        await temporal_client.get_workflow_handle(
            router_workflow_id(settings.task_queue)
        ).terminate()


async def test_the_router_keeps_its_cursor_across_continue_as_new(
    api: RunningApi, org: Org, worker: Services, sink: str, temporal_client: TemporalClient
) -> None:
    from workflows.pipeline_sources import SourceRouterInput, SourceRouterWorkflow

    handle = await temporal_client.start_workflow(
        SourceRouterWorkflow.run,
        SourceRouterInput(pass_seconds=0.3, idle_wait_s=0.1, passes_per_run=2),
        id=f"router-can-{uuid.uuid4().hex[:8]}",
        task_queue=api.settings.task_queue,
    )
    try:
        first_run = (await handle.describe()).run_id

        async def current_run() -> str | None:
            return (await handle.describe()).run_id

        await eventually(current_run, lambda run: run != first_run, timeout=20)
        async with httpx.AsyncClient(base_url=api.url) as http:
            pipeline_id = await create_pipeline(
                http, org.admin_key, {"type": "agent_execution"}, sink_destination(sink)
            )
            await publish_run(worker, org.id, "agent-c", "completed")
            log = await eventually(lambda: items(api.settings, pipeline_id), lambda v: len(v) >= 2)
        assert [i["status"] for i in log] == ["running", "completed"]
    finally:
        await handle.terminate()
