"""Workflows of the pipeline sources.

- `SourceRouterWorkflow` (one per deployment, id `pipeline-source-router-<taskQueue>`): loops the
  `route_sources` activity, keeping the event-log cursor as its state, and continues-as-new every
  `passes_per_run` activities so its history stays small (~6 events per pass). A pass's retries
  are bounded (~5 minutes, e.g. a database outage): when they run out, the failed activity and its
  error stay visible in the history, the router waits 10 s and continues-as-new from the same
  cursor — no event is skipped and no failure is retried without bound.
- `PipelineScheduleTickWorkflow`: started by a pipeline's Temporal Schedule on every tick.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.pipeline_sources import SourceActivities
    from deeployd.pipelines import contract
    from deeployd.pipelines.contract import (
        CurrentCursorInput,
        RouteSourcesInput,
        ScheduleTickActivityInput,
        ScheduleTickInput,
        SourceRouterInput,
    )

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
# Every pass heartbeats (at least once a second when idle), so a dead worker is noticed within
# seconds and the pass resumes on another from its cursor. 30 attempts ~ 5 minutes.
BOUNDED_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=30)
FAILED_PASS_PAUSE = timedelta(seconds=10)


@workflow.defn(name=contract.SOURCE_ROUTER_WORKFLOW)
class SourceRouterWorkflow:
    @workflow.run
    async def run(self, request: SourceRouterInput) -> None:
        cursor = request.cursor
        if cursor is None:
            cursor = await workflow.execute_activity_method(
                SourceActivities.current_event_cursor,
                CurrentCursorInput(),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=BOUNDED_RETRY,
            )
        for _ in range(request.passes_per_run):
            try:
                result = await workflow.execute_activity_method(
                    SourceActivities.route_sources,
                    RouteSourcesInput(
                        cursor=cursor, seconds=request.pass_seconds, idle_wait_s=request.idle_wait_s
                    ),
                    start_to_close_timeout=timedelta(seconds=request.pass_seconds + 120),
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=BOUNDED_RETRY,
                )
            except ActivityError as err:
                workflow.logger.error(
                    "source router pass failed at event %s: %s", cursor, err.cause
                )
                await workflow.sleep(FAILED_PASS_PAUSE)
                break
            cursor = result.cursor
        workflow.continue_as_new(request.model_copy(update={"cursor": cursor}))


@workflow.defn(name=contract.SCHEDULE_TICK_WORKFLOW)
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
            # a tick that cannot be taken for ~5 minutes fails (the next tick still runs)
            retry_policy=BOUNDED_RETRY,
        )
