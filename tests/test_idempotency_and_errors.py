"""Idempotency-Key on ingest, messages and task creation; a 500 keeps the connection usable and
carries a request id."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from api.main import create_app
from deeployd.services import Services
from deeployd.settings import Settings
from tests.conftest import Org, RunningApi, free_port
from tests.pipeline_helpers import auth, metrics


async def webhook_pipeline(http: httpx.AsyncClient) -> str:
    created = await http.post(
        "/api/streaming/pipelines",
        json={
            "name": f"idem-{uuid.uuid4().hex[:6]}",
            "source": {"type": "webhook"},
            "destination": {"type": "webhook", "config": {"url": "http://127.0.0.1:9/none"}},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.fixture
async def http(api: RunningApi, org: Org) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key), timeout=30) as c:
        yield c


async def test_the_same_batch_sent_twice_with_one_key_is_ingested_once(
    http: httpx.AsyncClient, org: Org
) -> None:
    pid = await webhook_pipeline(http)
    batch = [{"n": i} for i in range(50)]
    key = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    first = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch, headers=key)
    again = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert (await metrics(http, org.admin_key, pid))["latestOffset"] == 50

    other = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    third = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch, headers=other)
    assert third.status_code == 202
    assert third.json()["firstOffset"] == 51
    # Without a key every request is new.
    await http.post(f"/api/streaming/pipelines/{pid}/batch", json={"items": batch})
    assert (await metrics(http, org.admin_key, pid))["latestOffset"] == 150


async def test_a_key_reused_with_another_body_is_a_422_naming_the_header(
    http: httpx.AsyncClient, org: Org
) -> None:
    pid = await webhook_pipeline(http)
    key = {"Idempotency-Key": "same-key"}
    assert (
        await http.post(f"/api/streaming/pipelines/{pid}/process", json={"a": 1}, headers=key)
    ).status_code == 202
    reused = await http.post(f"/api/streaming/pipelines/{pid}/process", json={"a": 2}, headers=key)
    assert reused.status_code == 422
    assert reused.json()["errors"][0].startswith("header.Idempotency-Key")
    # The same key on another route (another pipeline) is independent.
    other = await webhook_pipeline(http)
    moved = await http.post(f"/api/streaming/pipelines/{other}/process", json={"a": 2}, headers=key)
    assert moved.status_code == 202
    assert (await metrics(http, org.admin_key, pid))["latestOffset"] == 1


async def test_concurrent_retries_with_one_key_ingest_once(
    http: httpx.AsyncClient, org: Org
) -> None:
    pid = await webhook_pipeline(http)
    batch = [{"n": i} for i in range(20)]
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    answers = await asyncio.gather(
        *(
            http.post(f"/api/streaming/pipelines/{pid}/batch", json=batch, headers=key)
            for _ in range(8)
        )
    )
    assert {a.status_code for a in answers} == {202}
    assert len({tuple(a.json()["offsets"]) for a in answers}) == 1
    assert (await metrics(http, org.admin_key, pid))["latestOffset"] == 20


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80),
    items=st.lists(
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3),
        min_size=1,
        max_size=5,
    ),
)
async def test_any_key_and_batch_replays_exactly(
    http: httpx.AsyncClient, key: str, items: list[dict[str, Any]]
) -> None:
    pid = await webhook_pipeline(http)
    headers = {"Idempotency-Key": key}
    first = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=items, headers=headers)
    again = await http.post(f"/api/streaming/pipelines/{pid}/batch", json=items, headers=headers)
    assert first.status_code == 202, first.text
    assert again.json() == first.json()
    assert first.json()["offsets"] == list(range(1, len(items) + 1))


async def test_a_key_that_is_not_a_header_token_is_a_422(http: httpx.AsyncClient) -> None:
    pid = await webhook_pipeline(http)
    response = await http.post(
        f"/api/streaming/pipelines/{pid}/process",
        json={"a": 1},
        headers={"Idempotency-Key": "x" * 300},
    )
    assert response.status_code == 422
    assert any("Idempotency-Key" in e for e in response.json()["errors"])


# --- 500s ------------------------------------------------------------------------------------


@pytest.fixture
def failing_api(api: RunningApi) -> str:
    """The real API, with one extra route that fails."""

    async def explode() -> None:
        raise RuntimeError("a bug")

    async def broken_stream() -> StreamingResponse:
        async def frames() -> AsyncIterator[bytes]:
            yield b"data: first\n\n"
            raise RuntimeError("the stream's source failed")

        return StreamingResponse(frames(), media_type="text/event-stream")

    app = api.app
    assert isinstance(app, FastAPI)
    app.add_api_route("/test-only/explode", explode)
    app.add_api_route("/test-only/broken-stream", broken_stream)
    return api.url


def local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


async def test_a_500_is_json_with_a_logged_request_id_and_the_connection_stays_usable(
    failing_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="deeployd.errors")
    async with httpx.AsyncClient(base_url=failing_api) as http:
        failed = await http.get("/test-only/explode")
        failed_port = local_port(failed)
        after = await http.get("/healthz")
        after_port = local_port(after)
        chosen = await http.get("/test-only/explode", headers={"X-Request-ID": "req-42.a"})
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/json"
    request_id = failed.json()["requestId"]
    assert failed.headers["x-request-id"] == request_id
    assert failed.headers.get("connection") != "close"
    # The next request went over the same keep-alive connection and worked.
    assert after.status_code == 200
    assert after_port == failed_port
    assert after.headers["x-request-id"] not in ("", request_id)
    # A caller's request id is kept.
    assert chosen.json()["requestId"] == chosen.headers["x-request-id"] == "req-42.a"
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert logged and logged[0].exc_info is not None
    assert "a bug" in str(logged[0].exc_info[1])


async def test_a_503_from_a_route_carries_retry_after(settings: Settings) -> None:
    """Temporal not connected yet: a route that needs it answers the JSON 503."""
    broken = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app = create_app(broken)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        from tests.conftest import make_org

        org = await make_org(broken)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=auth(org.admin_key)
        ) as http:
            pid = await webhook_pipeline(http)
            response = await http.post(f"/api/streaming/pipelines/{pid}/start")
        assert services.temporal is None
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(broken.retry_after_seconds)
    body = response.json()
    assert body["retryAfter"] == broken.retry_after_seconds and "Temporal" in body["error"]


# --- messages and tasks ---------------------------------------------------------------------


async def test_a_retried_message_with_one_key_starts_one_run(
    api: RunningApi, worker: Services, org: Org
) -> None:
    from tests.agent_support import create_agent, create_conversation, read_sse, scripted_agent

    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key), timeout=60) as h:
        agent = await create_agent(h, org, scripted_agent([{"text": "Hello there."}]))
        conv = await create_conversation(h, org, agent["id"])
        url = f"/api/conversations/{conv}/messages"
        key = {"Idempotency-Key": f"msg-{uuid.uuid4()}"}
        first = await h.post(url, json={"content": "hi"}, headers=key)
        again = await h.post(url, json={"content": "hi"}, headers=key)
        assert first.status_code == again.status_code == 202
        assert again.json()["runId"] == first.json()["runId"]
        assert again.json()["messageId"] == first.json()["messageId"]
        assert again.headers["idempotent-replayed"] == "true"
        # A streaming retry gets the same run's stream, from its beginning.
        async with h.stream("POST", f"{url}?stream=true", json={"content": "hi"}, headers=key) as s:
            assert s.headers["x-run-id"] == first.json()["runId"]
            events = await read_sse(s)
        assert events[-1][1]["type"] == "done"
        waited = await h.post(f"{url}?wait=true", json={"content": "hi"}, headers=key)
        assert waited.json()["runId"] == first.json()["runId"]
        assert waited.json()["message"]["content"] == "Hello there."
        # A different key is a new message.
        other = await h.post(
            f"{url}?wait=true", json={"content": "hi"}, headers={"Idempotency-Key": "other"}
        )
        assert other.json()["runId"] != first.json()["runId"]
        reused = await h.post(url, json={"content": "something else"}, headers=key)
        assert reused.status_code == 422
        messages = (await h.get(url)).json()
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


async def test_a_retried_task_creation_with_one_key_creates_one_task(
    api: RunningApi, worker: Services, org: Org
) -> None:
    from tests.agent_support import create_agent, scripted_agent

    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key), timeout=60) as h:
        agent = await create_agent(h, org, scripted_agent([{"text": "Done."}]))
        body = {"agentId": agent["id"], "message": "Book me a table"}
        key = {"Idempotency-Key": f"task-{uuid.uuid4()}"}
        answers = await asyncio.gather(
            *(h.post("/api/a2a/tasks", json=body, headers=key) for _ in range(3))
        )
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["id"] for a in answers}) == 1
        fresh = await h.post("/api/a2a/tasks", json=body, headers={"Idempotency-Key": "new"})
        assert fresh.json()["id"] != answers[0].json()["id"]
        listed = (await h.get("/api/a2a/tasks", params={"agentId": agent["id"]})).json()
    assert listed["totalSize"] == 2


async def test_a_stream_that_fails_midway_ends_cleanly_and_the_connection_stays_usable(
    failing_api: str,
) -> None:
    async with httpx.AsyncClient(base_url=failing_api) as http:
        async with http.stream("GET", "/test-only/broken-stream") as response:
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
            stream_port = local_port(response)
        assert response.status_code == 200
        assert body == b"data: first\n\n"  # ended, not reset: the client just reconnects
        after = await http.get("/healthz")
        assert after.status_code == 200 and local_port(after) == stream_port
