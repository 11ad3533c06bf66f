"""Temporal Schedules the platform keeps (created idempotently when a worker starts)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

from deeployd.settings import Settings

RETENTION_SCHEDULE_ID = "deeployd-event-retention"


async def ensure_retention_schedule(client: Client, settings: Settings) -> None:
    from workflows.retention import EventRetentionWorkflow, RetentionInput

    try:
        await client.create_schedule(
            RETENTION_SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    EventRetentionWorkflow.run,
                    RetentionInput(max_age_hours=settings.event_retention_hours),
                    id="deeployd-event-retention-run",
                    task_queue=settings.task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
            ),
        )
    except ScheduleAlreadyRunningError:
        pass
