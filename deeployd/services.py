"""The long-lived clients a process needs, built once and shared (API lifespan, worker, CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client as TemporalClient

from deeployd import temporal
from deeployd.db import Database
from deeployd.eventlog import EventBus, EventPublisher
from deeployd.security import SecretBox
from deeployd.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    publisher: EventPublisher
    temporal: TemporalClient | None = None
    bus: EventBus | None = None

    @classmethod
    async def open(
        cls, settings: Settings, *, with_temporal: bool = True, with_bus: bool = False
    ) -> Services:
        db = Database.from_settings(settings)
        await db.open()
        publisher = EventPublisher(
            db.pool, coalesce_ms=settings.event_coalesce_ms, max_batch=settings.event_max_batch
        )
        services = cls(settings=settings, db=db, publisher=publisher)
        try:
            if with_temporal:
                services.temporal = await temporal.connect(settings)
            if with_bus:
                services.bus = EventBus(db.url, db.pool, queue_size=settings.sse_queue_size)
                await services.bus.start()
        except BaseException:
            await services.close()
            raise
        return services

    def require_temporal(self) -> TemporalClient:
        if self.temporal is None:
            raise RuntimeError("this process was opened without a Temporal client")
        return self.temporal

    def require_bus(self) -> EventBus:
        if self.bus is None:
            raise RuntimeError("this process was opened without an event bus")
        return self.bus

    @property
    def secret_box(self) -> SecretBox:
        if not self.settings.secret_key:
            raise RuntimeError("DEEPLOYD_SECRET_KEY is not set; secrets cannot be stored or read")
        return SecretBox(self.settings.secret_key)

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.stop()
        await self.publisher.close()
        await self.db.close()
