"""The SDK's reconnecting SSE reader across a real API restart on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

import deeployd
from api.main import create_app
from deeployd.devstack import free_port
from deeployd.sdk.sse import StreamEvent
from deeployd.services import Services
from deeployd.settings import Settings
from tests.conftest import Org


@contextlib.asynccontextmanager
async def serving(settings: Settings, port: int) -> AsyncIterator[FastAPI]:
    """A fresh API process-equivalent (its own app, bus and pools) on a fixed port."""
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=2
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_sdk_reader_resumes_across_an_api_restart_with_every_event_once_in_order(
    settings: Settings, org: Org
) -> None:
    stream_key = f"run:{uuid.uuid4().hex}"
    port = free_port()
    services = await Services.open(settings, with_temporal=False)
    published: list[int] = []
    counter = 0

    async def publish(n: int) -> None:
        nonlocal counter
        published.extend(
            await services.publisher.publish_many(
                (org.id, stream_key, "tick", {"n": counter + i}) for i in range(n)
            )
        )
        counter += n

    received: list[StreamEvent] = []
    try:
        async with deeployd.Client(f"http://127.0.0.1:{port}", org.admin_key) as client:
            stream = client.events(streams=[stream_key], last_event_id=0)

            async def read_all() -> None:
                async with stream:
                    async for event in stream:
                        received.append(event)
                        if len(received) == 30:
                            break

            await publish(10)  # stored before the reader exists: replayed from id 0
            async with serving(settings, port):
                reader = asyncio.create_task(read_all())
                await wait_until(lambda: len(received) == 10)
                await publish(5)  # live
                await wait_until(lambda: len(received) == 15)
            # The API is down: the reader is retrying with backoff while more events land.
            await publish(10)
            await asyncio.sleep(0.3)
            async with serving(settings, port) as second:
                await publish(5)
                await asyncio.wait_for(reader, timeout=15)
                # Leaving `async with stream` hung up: the new server drops its subscriber.
                bus = second.state.services.bus
                await wait_until(lambda: bus.subscriber_count == 0)
            assert [e async for e in stream] == []  # a closed reader stays closed
    finally:
        await services.close()

    assert [e.id for e in received] == published
    assert [e["n"] for e in received] == list(range(30))
    assert {e.type for e in received} == {"tick"}
    assert stream.reconnects >= 1
    assert stream.last_event_id == published[-1]
