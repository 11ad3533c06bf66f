"""The durable event log and its resumable SSE streams, over real Postgres, Temporal and HTTP."""

from __future__ import annotations

import asyncio
import socket
import uuid

import httpx
from temporalio.client import Client as TemporalClient

from activities.events import EventToPublish, PublishEventsInput
from deeployd.services import Services
from tests.conftest import Org, RunningApi
from tests.sample_workflows import PublishThroughActivityWorkflow
from tests.sse import collect
from worker import build_worker


def auth(org: Org) -> dict[str, str]:
    return {"Authorization": f"Bearer {org.admin_key}"}


async def publish(services: Services, org: Org, stream: str, n: int, size: int = 0) -> list[int]:
    pad = "x" * size
    return await services.publisher.publish_many(
        (org.id, stream, "tick", {"n": i, "pad": pad}) for i in range(n)
    )


async def test_event_published_from_an_activity_in_a_workflow_reaches_an_sse_client(
    api: RunningApi, org: Org, settings, temporal_client: TemporalClient
) -> None:
    stream = f"run:{uuid.uuid4().hex}"
    services = await Services.open(settings, with_temporal=False)
    try:
        async with httpx.AsyncClient(base_url=api.url) as http:
            reader = asyncio.create_task(
                collect(
                    http,
                    "/api/events/stream",
                    count=3,
                    headers=auth(org),
                    params={"streams": stream},
                )
            )
            await asyncio.sleep(0.3)  # the reader is live before anything is published
            async with build_worker(
                temporal_client,
                services,
                settings.task_queue,
                extra_workflows=[PublishThroughActivityWorkflow],
            ):
                ids = await temporal_client.execute_workflow(
                    PublishThroughActivityWorkflow.run,
                    PublishEventsInput(
                        events=[
                            EventToPublish(
                                org_id=org.id, stream=stream, type="token", data={"token": t}
                            )
                            for t in ("Hel", "lo", "!")
                        ]
                    ),
                    id=f"publish-{uuid.uuid4().hex}",
                    task_queue=settings.task_queue,
                )
            events = await asyncio.wait_for(reader, timeout=20)
    finally:
        await services.close()
    assert [e[0] for e in events] == ids
    assert [e[1] for e in events] == [
        {"type": "token", "token": "Hel"},
        {"type": "token", "token": "lo"},
        {"type": "token", "token": "!"},
    ]


async def test_resume_with_last_event_id_delivers_every_event_exactly_once_in_order(
    api: RunningApi, org: Org, worker: Services
) -> None:
    stream = f"run:{uuid.uuid4().hex}"
    ids = await publish(worker, org, stream, 50)
    async with httpx.AsyncClient(base_url=api.url) as http:
        first = await collect(
            http,
            "/api/events/stream",
            count=20,
            headers=auth(org),
            params={"streams": stream, "lastEventId": "0"},
        )
        # More events arrive while the reader is away.
        ids += await publish(worker, org, stream, 30)
        resumed = asyncio.create_task(
            collect(
                http,
                "/api/events/stream",
                count=80 - 20 + 10,
                headers={**auth(org), "Last-Event-ID": str(first[-1][0])},
                params={"streams": stream},
            )
        )
        await asyncio.sleep(0.3)
        ids += await publish(worker, org, stream, 10)  # and some after it is back, live
        second = await asyncio.wait_for(resumed, timeout=20)
    received = [e[0] for e in first + second]
    assert received == ids
    assert [e[1]["n"] for e in first + second] == list(range(50)) + list(range(30)) + list(
        range(10)
    )


async def test_stream_only_carries_the_requested_streams_and_types(
    api: RunningApi, org: Org, worker: Services
) -> None:
    wanted = f"pipeline:{uuid.uuid4().hex}"
    await worker.publisher.publish(org.id, f"pipeline:{uuid.uuid4().hex}", "status", {"s": "other"})
    await worker.publisher.publish(org.id, wanted, "metrics", {"s": "wrong type"})
    await worker.publisher.publish(org.id, wanted, "status", {"s": "yes"})
    async with httpx.AsyncClient(base_url=api.url) as http:
        events = await collect(
            http,
            "/api/events/stream",
            count=1,
            headers=auth(org),
            params={"streams": wanted, "types": "status", "lastEventId": "0"},
        )
    assert [e[1] for e in events] == [{"type": "status", "s": "yes"}]


async def test_slow_consumer_is_cut_with_slow_consumer_while_fast_ones_get_everything(
    api: RunningApi, org: Org, worker: Services
) -> None:
    api.app.state.services.bus._queue_size = 600  # a smaller mailbox makes "too far behind" quick
    stream = f"run:{uuid.uuid4().hex}"
    port = int(api.url.rsplit(":", 1)[1])

    # The slow reader: a raw socket with a tiny receive buffer that never reads.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(
        f"GET /api/events/stream?streams={stream} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {org.admin_key}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    async with httpx.AsyncClient(base_url=api.url) as http:
        fast = asyncio.create_task(
            collect(
                http,
                "/api/events/stream",
                count=6000,
                headers=auth(org),
                params={"streams": stream},
            )
        )
        await asyncio.sleep(0.5)
        await publish(worker, org, stream, 6000, size=2000)
        fast_events = await asyncio.wait_for(fast, timeout=60)
    assert [e[1]["n"] for e in fast_events] == list(range(6000))

    # Now drain the slow socket: a contiguous prefix, then slow_consumer, then the end.
    slow.setblocking(False)
    loop = asyncio.get_running_loop()
    raw = b""
    while True:
        chunk = await asyncio.wait_for(loop.sock_recv(slow, 65536), timeout=20)
        if not chunk:
            break
        raw += chunk
        if b'"slow_consumer"' in raw and raw.endswith(b"0\r\n\r\n"):
            break
    slow.close()
    text = raw.decode()
    assert '"code":"slow_consumer"' in text
    delivered = text.count('"tick"')
    assert 0 < delivered < 6000


async def test_events_of_another_organisation_never_reach_a_stream(
    api: RunningApi, org: Org, worker: Services, settings
) -> None:
    from tests.conftest import make_org

    other = await make_org(settings)
    stream = f"run:{uuid.uuid4().hex}"
    await worker.publisher.publish(other.id, stream, "secret", {"v": 1})
    await worker.publisher.publish(org.id, stream, "mine", {"v": 2})
    async with httpx.AsyncClient(base_url=api.url) as http:
        events = await collect(
            http,
            "/api/events/stream",
            count=1,
            headers=auth(org),
            params={"lastEventId": "0", "streams": stream},
        )
        listed = (
            await http.get("/api/events", headers=auth(org), params={"streams": stream})
        ).json()
    assert [e[1]["type"] for e in events] == ["mine"]
    assert [e["type"] for e in listed["items"]] == ["mine"]


async def test_access_token_query_parameter_authenticates_event_source_clients(
    api: RunningApi, org: Org, worker: Services
) -> None:
    stream = f"run:{uuid.uuid4().hex}"
    await worker.publisher.publish(org.id, stream, "hello", {})
    async with httpx.AsyncClient(base_url=api.url) as http:
        events = await collect(
            http,
            "/api/events/stream",
            count=1,
            params={"streams": stream, "lastEventId": "0", "access_token": org.admin_key},
        )
        refused = await http.get("/api/events/stream", params={"access_token": "dk_wrong"})
    assert events[0][1]["type"] == "hello"
    assert refused.status_code == 401


async def test_bad_last_event_id_is_a_clear_422(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        response = await http.get(
            "/api/events/stream", headers={**auth(org), "Last-Event-ID": "abc"}
        )
    assert response.status_code == 422
    assert response.json()["errors"] == ["header.Last-Event-ID: must be a non-negative event id"]
