"""Event-log retention, run by a Temporal Schedule."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.events import EventActivities, PruneEventsInput
    from deeployd.pipelines import contract
    from deeployd.pipelines.contract import RetentionInput


@workflow.defn(name=contract.RETENTION_WORKFLOW)
class EventRetentionWorkflow:
    @workflow.run
    async def run(self, request: RetentionInput) -> int:
        return await workflow.execute_activity_method(
            EventActivities.prune_events,
            PruneEventsInput(max_age_hours=request.max_age_hours),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
