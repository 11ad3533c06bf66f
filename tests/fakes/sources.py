"""Helpers for the pipeline-source tests: the running source router, pipelines, their item log."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from temporalio.client import Client as TemporalClient

from deeployd.pipelines.sources.runtime import ensure_source_router
from deeployd.services import Services
from deeployd.settings import Settings
from tests.pipeline_helpers import auth, query


def sink_destination(sink_url: str) -> dict[str, Any]:
    """A webhook destination posting to a local server that accepts anything (SlackFake /hook)."""
    return {"type": "webhook", "config": {"url": f"{sink_url}/hook"}}


@contextlib.asynccontextmanager
async def running_router(
    temporal_client: TemporalClient, settings: Settings, services: Services
) -> AsyncIterator[str]:
    """The deployment's SourceRouterWorkflow on the test's task queue (served by `worker`)."""
    workflow_id = await ensure_source_router(temporal_client, settings, services, pass_seconds=5)
    try:
        yield workflow_id
    finally:
        with contextlib.suppress(Exception):
            await temporal_client.get_workflow_handle(workflow_id).terminate("test over")


async def create_pipeline(
    http: httpx.AsyncClient,
    key: str,
    source: dict[str, Any],
    destination: dict[str, Any],
    *,
    name: str = "source-test",
    transforms: list[dict[str, Any]] | None = None,
    start: bool = True,
) -> str:
    response = await http.post(
        "/api/streaming/pipelines",
        headers=auth(key),
        json={
            "name": name,
            "source": source,
            "transforms": transforms or [],
            "destination": destination,
        },
    )
    assert response.status_code == 201, response.text
    pipeline_id: str = response.json()["id"]
    if start:
        response = await http.post(
            f"/api/streaming/pipelines/{pipeline_id}/start", headers=auth(key)
        )
        assert response.status_code == 200, response.text
    return pipeline_id


async def items(settings: Settings, pipeline_id: str) -> list[dict[str, Any]]:
    """The pipeline's item log, in offset order."""
    rows = await query(
        settings,
        'SELECT value FROM pipeline_items WHERE pipeline_id = %s ORDER BY "offset"',
        (pipeline_id,),
    )
    return [row[0] for row in rows]
