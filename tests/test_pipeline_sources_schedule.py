"""The `schedule` source: a Temporal Schedule per pipeline that ingests an item on each tick."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client as TemporalClient
from temporalio.service import RPCError

from deeployd.pipelines.sources.schedule import delete_schedule, schedule_id
from deeployd.services import Services
from tests.conftest import Org, RunningApi
from tests.fakes import serve
from tests.fakes.slack import SlackFake
from tests.fakes.sources import create_pipeline, items, sink_destination
from tests.pipeline_helpers import auth, eventually


@pytest.fixture
async def sink() -> AsyncIterator[str]:
    async with serve(SlackFake().app) as url:
        yield url


async def test_ticks_become_items_and_the_schedule_follows_the_pipeline(
    api: RunningApi, org: Org, worker: Services, sink: str, temporal_client: TemporalClient
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        pipeline_id = await create_pipeline(
            http,
            org.admin_key,
            {"type": "schedule", "intervalMs": 1000, "payload": {"job": "nightly-report"}},
            sink_destination(sink),
        )
        handle = temporal_client.get_schedule_handle(schedule_id(pipeline_id))
        try:
            log = await eventually(lambda: items(api.settings, pipeline_id), lambda v: len(v) >= 2)
            assert all(i["job"] == "nightly-report" for i in log)
            assert len({i["scheduledAt"] for i in log}) == len(log)  # one item per tick
            assert all(i["scheduledAt"].endswith("Z") for i in log)

            response = await http.post(f"/api/streaming/pipelines/{pipeline_id}/pause")
            assert response.status_code == 200, response.text
            assert (await handle.describe()).schedule.state.paused
            response = await http.post(f"/api/streaming/pipelines/{pipeline_id}/resume")
            assert response.status_code == 200, response.text
            assert not (await handle.describe()).schedule.state.paused

            response = await http.post(f"/api/streaming/pipelines/{pipeline_id}/stop", timeout=30)
            assert response.status_code == 200, response.text
            with pytest.raises(RPCError):
                await handle.describe()
        finally:
            with contextlib.suppress(Exception):
                await delete_schedule(temporal_client, pipeline_id)


async def test_cron_schedules_are_created_with_the_cron_spec(
    api: RunningApi, org: Org, worker: Services, sink: str, temporal_client: TemporalClient
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        pipeline_id = await create_pipeline(
            http, org.admin_key, {"type": "schedule", "cron": "0 3 * * *"}, sink_destination(sink)
        )
        try:
            described = await temporal_client.get_schedule_handle(
                schedule_id(pipeline_id)
            ).describe()
            spec = described.schedule.spec
            # Temporal stores the cron as a calendar: at 03:00:00 every day.
            (calendar,) = spec.calendars
            assert [(r.start, r.end) for r in calendar.hour] == [(3, 3)]
            assert [(r.start, r.end) for r in calendar.minute] == [(0, 0)]
            assert spec.intervals == []
            response = await http.delete(f"/api/streaming/pipelines/{pipeline_id}")
            assert response.status_code == 204
            with pytest.raises(RPCError):
                await temporal_client.get_schedule_handle(schedule_id(pipeline_id)).describe()
        finally:
            with contextlib.suppress(Exception):
                await delete_schedule(temporal_client, pipeline_id)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ({"type": "schedule"}, "source: exactly one of 'cron' or 'intervalMs' is required"),
        ({"type": "schedule", "cron": "* * * * *", "intervalMs": 5000}, "source: exactly one"),
        ({"type": "schedule", "intervalMs": 10}, "source.intervalMs: Input should be greater"),
        ({"type": "schedule", "cron": "every day"}, "source.cron: not a cron expression"),
        ({"type": "schedule", "cron": "@daily", "payload": [1]}, "source.payload: Input should be"),
    ],
)
async def test_bad_schedule_config_is_a_422(
    api: RunningApi, org: Org, source: dict, error: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        response = await http.post(
            "/api/streaming/pipelines",
            json={"name": "s", "source": source, "destination": sink_destination("http://x")},
        )
    assert response.status_code == 422, response.text
    assert any(e.startswith(error) for e in response.json()["errors"]), response.json()
