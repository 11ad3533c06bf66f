"""Workflows of the pipeline sources.

- `SourceRouterWorkflow` (one per deployment, id `pipeline-source-router-<taskQueue>`): loops the
  `route_sources` activity, keeping the event-log cursor as its state, and continues-as-new every
  `passes_per_run` activities so its history stays small (~6 events per pass).
- `PipelineScheduleTickWorkflow`: started by a pipeline's Temporal Schedule on every tick.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities.pipeline_sources import (
        CurrentCursorInput,
        RouteSourcesInput,
        ScheduleTickActivityInput,
        SourceActivities,
    )

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


class SourceRouterInput(BaseModel):
    cursor: int | None = None  # None: a brand-new router starts at the log's current end
    pass_seconds: float = 60.0
    idle_wait_s: float = 1.0
    passes_per_run: int = 200


@workflow.defn
class SourceRouterWorkflow:
    @workflow.run
    async def run(self, request: SourceRouterInput) -> None:
        cursor = request.cursor
        if cursor is None:
            cursor = await workflow.execute_activity_method(
                SourceActivities.current_event_cursor,
                CurrentCursorInput(),
                start_to_close_timeout=timedelta(seconds=30),
            )
        for _ in range(request.passes_per_run):
            result = await workflow.execute_activity_method(
                SourceActivities.route_sources,
                RouteSourcesInput(
                    cursor=cursor, seconds=request.pass_seconds, idle_wait_s=request.idle_wait_s
                ),
                start_to_close_timeout=timedelta(seconds=request.pass_seconds + 120),
                # Every pass heartbeats (at least once a second when idle), so a dead worker is
                # noticed within seconds and the pass resumes on another from its cursor.
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            )
            cursor = result.cursor
        workflow.continue_as_new(request.model_copy(update={"cursor": cursor}))


class ScheduleTickInput(BaseModel):
    org_id: str
    pipeline_id: str
    payload: dict[str, Any] = Field(default_factory=dict)


@workflow.defn
class PipelineScheduleTickWorkflow:
    @workflow.run
    async def run(self, request: ScheduleTickInput) -> int:
        # The instant this tick was scheduled for (set by Temporal on scheduled runs) — stable
        # across retries, so it is the item's dedup key.
        scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START)
        when = scheduled or workflow.now()
        return await workflow.execute_activity_method(
            SourceActivities.schedule_tick,
            ScheduleTickActivityInput(
                org_id=request.org_id,
                pipeline_id=request.pipeline_id,
                payload=request.payload,
                scheduled_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            # bounded: a tick that cannot be taken for ~5 minutes fails (the next tick still runs)
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=30),
        )
