"""Event-log activities: publishing from workflows, and pruning old events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity

from deeployd import idempotency
from deeployd.services import Services


class EventToPublish(BaseModel):
    org_id: str
    stream: str
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


class PublishEventsInput(BaseModel):
    events: list[EventToPublish]


class PruneEventsInput(BaseModel):
    max_age_hours: float
    batch_size: int = 10_000


class EventActivities:
    """Built once in the worker; holds the database pool, the coalescing publisher and how long
    idempotency keys are kept."""

    def __init__(self, services: Services) -> None:
        self._pool = services.db.pool
        self._publisher = services.publisher
        self._idempotency_retention_hours = services.settings.idempotency_retention_hours

    @activity.defn
    async def publish_events(self, request: PublishEventsInput) -> list[int]:
        """Append events to the log (durably) and return their ids."""
        return await self._publisher.publish_many(
            (e.org_id, e.stream, e.type, e.data) for e in request.events
        )

    @activity.defn
    async def prune_events(self, request: PruneEventsInput) -> int:
        """Delete events older than the retention age, in small batches so locks stay short."""
        deleted = 0
        age = timedelta(hours=request.max_age_hours)
        while True:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events "
                    "WHERE created_at < now() - %s ORDER BY id LIMIT %s)",
                    (age, request.batch_size),
                )
                count = cursor.rowcount
            deleted += count
            activity.heartbeat(deleted)
            if count < request.batch_size:
                break
        # Expired idempotency keys go with the same schedule (no new workflow step needed).
        await idempotency.prune(self._pool, self._idempotency_retention_hours)
        return deleted
