"""The Temporal worker process: `python worker.py` (or `deeployd worker`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from deeployd import temporal
from deeployd.agents.alerts import ensure_sweep_schedule
from deeployd.logging import configure_logging
from deeployd.pipelines.sources.runtime import ensure_source_router
from deeployd.schedules import ensure_retention_schedule
from deeployd.services import Services
from deeployd.settings import Settings, get_settings
from workflows import WORKFLOWS

log = logging.getLogger("deeployd.worker")

HEARTBEAT_THROTTLE = timedelta(milliseconds=250)


def build_worker(
    client: Client, services: Services, task_queue: str, *, extra_workflows: Sequence[type] = ()
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, *extra_workflows],
        activities=build_activities(services),
        max_concurrent_activities=200,
        # Heartbeats reach the server at most this long after they are recorded (the SDK's
        # default is 80% of the heartbeat timeout: 4 s). The pipeline activity's heartbeat
        # carries the delivered prefix, so this bounds what a killed worker redelivers.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """Open the process's clients, register search attributes and schedules, and run a worker."""
    services = await Services.open(settings, with_temporal=True)
    try:
        client = services.require_temporal()
        await temporal.ensure_search_attributes(client)
        await ensure_retention_schedule(client, settings)
        await ensure_source_router(client, settings, services)
        await ensure_sweep_schedule(client, settings)
        worker = build_worker(client, services, settings.task_queue)
        async with worker:
            yield worker
    finally:
        await services.close()


async def run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(settings):
        log.info("worker running on task queue %s", settings.task_queue)
        await stop.wait()
        log.info("worker stopping")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
