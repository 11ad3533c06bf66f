"""Activities of the pipeline sources: the source router's pass, and one schedule tick."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from deeployd.pipelines.contract import (
    CurrentCursorInput,
    RouteSourcesInput,
    RouteSourcesResult,
    ScheduleTickActivityInput,
)
from deeployd.pipelines.errors import BackpressureExceeded, PipelineNotFound
from deeployd.pipelines.ingest import ingest_items
from deeployd.pipelines.sources.router import current_event_id, run_router
from deeployd.services import Services

__all__ = [
    "CurrentCursorInput",
    "RouteSourcesInput",
    "RouteSourcesResult",
    "ScheduleTickActivityInput",
    "SourceActivities",
]


class SourceActivities:
    """Built once in the worker with the process's shared clients."""

    def __init__(self, services: Services) -> None:
        self._services = services

    @activity.defn
    async def current_event_cursor(self, request: CurrentCursorInput) -> int:
        """Where a brand-new router starts: after every event already in the log."""
        return await current_event_id(self._services)

    @activity.defn
    async def route_sources(self, request: RouteSourcesInput) -> RouteSourcesResult:
        """Route agent events and database changes into pipelines for about `seconds`.

        Heartbeats carry the cursor, so a retry after a worker crash resumes where the last
        heartbeat left off; anything routed after it is routed again and dropped by dedup key.
        """
        details = activity.info().heartbeat_details
        cursor = max(request.cursor, int(details[0])) if details else request.cursor
        cursor, routed = await run_router(
            self._services,
            cursor,
            seconds=request.seconds,
            idle_wait_s=request.idle_wait_s,
            heartbeat=activity.heartbeat,
        )
        return RouteSourcesResult(cursor=cursor, routed=routed)

    @activity.defn
    async def schedule_tick(self, request: ScheduleTickActivityInput) -> int:
        """Ingest the tick's item; returns its offset (-1: the pipeline no longer exists)."""
        item = {**request.payload, "scheduledAt": request.scheduled_at}
        try:
            offsets = await ingest_items(
                self._services,
                request.org_id,
                request.pipeline_id,
                [item],
                dedup_keys=[f"schedule:{request.scheduled_at}"],
            )
        except PipelineNotFound:
            return -1
        except BackpressureExceeded as exc:
            raise ApplicationError(
                str(exc), next_retry_delay=timedelta(seconds=exc.retry_after_s)
            ) from None
        return offsets[0]
