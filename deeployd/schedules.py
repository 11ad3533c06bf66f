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
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from deeployd.pipelines import contract
from deeployd.pipelines.contract import RETENTION_SCHEDULE_ID, RetentionInput
from deeployd.settings import Settings

__all__ = ["RETENTION_SCHEDULE_ID", "ensure_retention_schedule", "ensure_schedule"]


async def ensure_schedule(
    client: Client, schedule_id: str, schedule: Schedule, *, replace: bool = False
) -> bool:
    """Create `schedule` unless one with this id exists (then, with `replace`, bring it up to
    date). True when it was created now. Actions name their workflow by its contract name."""
    try:
        await client.create_schedule(schedule_id, schedule)
        return True
    except ScheduleAlreadyRunningError:
        if not replace:
            return False

    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(schedule_id).update(update)
    return False


async def ensure_retention_schedule(client: Client, settings: Settings) -> None:
    await ensure_schedule(
        client,
        RETENTION_SCHEDULE_ID,
        Schedule(
            action=ScheduleActionStartWorkflow(
                contract.RETENTION_WORKFLOW,
                RetentionInput(max_age_hours=settings.event_retention_hours),
                id=contract.RETENTION_RUN_ID,
                task_queue=settings.task_queue,
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        ),
    )
