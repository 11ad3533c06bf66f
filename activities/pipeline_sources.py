"""Activities of the pipeline sources: the source router's pass, and one schedule tick."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating, previous_details
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

# How often the router's cursor is heartbeated while it advances (once a second while it does
# not): a retry after a crash resumes from the last one and re-routes the rest, which dedup keys
# drop.
HEARTBEAT_EVERY_S = 0.25

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
        details = previous_details()
        start = max(request.cursor, int(details[0])) if details else request.cursor
        routed_through = [start]  # the cursor after the router's latest pass

        def passed(cursor: int) -> None:
            routed_through[0] = cursor

        async with heartbeating(
            HEARTBEAT_EVERY_S, lambda: routed_through[0], unchanged_every_s=1.0
        ):
            cursor, routed = await run_router(
                self._services,
                start,
                seconds=request.seconds,
                idle_wait_s=request.idle_wait_s,
                heartbeat=passed,
            )
        return RouteSourcesResult(cursor=cursor, routed=routed)

    @activity.defn
    async def schedule_tick(self, request: ScheduleTickActivityInput) -> int:
        """Ingest the tick's item; returns its offset (-1: the pipeline no longer exists)."""
        item = {**request.payload, "scheduledAt": request.scheduled_at}
        try:
            offsets = await ingest_items(
                self._services.db,
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
