"""The source router workflow against stand-in activities with the real activity names.

A pass that fails for good (retries exhausted, or a non-retryable error) must neither skip events
nor end routing: the router pauses and continues-as-new from the cursor it had.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio import activity
from temporalio.client import Client as TemporalClient
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from deeployd.pipelines import contract
from workflows.pipeline_sources import SourceRouterWorkflow


class RouterStandIns:
    """The first pass fails for good; later passes route one event each."""

    def __init__(self) -> None:
        self.cursors: list[int] = []
        self.three_passes = asyncio.Event()

    @activity.defn(name="current_event_cursor")
    async def current_event_cursor(self, request: contract.CurrentCursorInput) -> int:
        return 41

    @activity.defn(name="route_sources")
    async def route_sources(
        self, request: contract.RouteSourcesInput
    ) -> contract.RouteSourcesResult:
        self.cursors.append(request.cursor)
        if len(self.cursors) >= 3:
            self.three_passes.set()
        if len(self.cursors) == 1:
            raise ApplicationError("events table is gone", non_retryable=True)
        return contract.RouteSourcesResult(cursor=request.cursor + 1, routed=1)


async def test_a_failed_pass_resumes_from_the_same_cursor(temporal_client: TemporalClient) -> None:
    stand_ins = RouterStandIns()
    queue = f"router-{uuid.uuid4().hex[:12]}"
    async with Worker(
        temporal_client,
        task_queue=queue,
        workflows=[SourceRouterWorkflow],
        activities=[stand_ins.current_event_cursor, stand_ins.route_sources],
    ):
        handle = await temporal_client.start_workflow(
            contract.SOURCE_ROUTER_WORKFLOW,
            contract.SourceRouterInput(passes_per_run=1, pass_seconds=1),
            id=contract.router_workflow_id(queue),
            task_queue=queue,
        )
        try:
            await asyncio.wait_for(stand_ins.three_passes.wait(), 60)
        finally:
            await handle.terminate("test over")
    # The failed pass's cursor is routed again (nothing skipped), then routing goes on.
    assert stand_ins.cursors[:3] == [41, 41, 42]
