"""Runs survive a killed worker and readers that drop: nothing lost, nothing repeated."""

from __future__ import annotations

import asyncio
import signal

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import deeployd
from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    read_sse,
    run_events,
    scripted_agent,
    send,
    text_of,
    types,
    wait_status,
)
from tests.conftest import Org, RunningApi, worker_process
from tests.fakes import serve


async def test_a_reader_that_drops_mid_answer_resumes_with_every_token_once_in_order(
    api: RunningApi, org: Org, worker: Services
) -> None:
    words = [f"tok{i} " for i in range(150)]
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http, org, scripted_agent([{"text": "".join(words)}], token_delay_ms=5)
        )
        conv = await create_conversation(http, org, agent["id"])
        async with http.stream(
            "POST",
            f"/api/conversations/{conv}/messages",
            params={"stream": "true"},
            json={"content": "go"},
            headers=auth(org),
        ) as response:
            first = await read_sse(response, limit=25)  # then hang up mid-answer
        assert types(first) == ["token"] * 25
        headers = {**auth(org), "Last-Event-ID": str(first[-1][0])}
        async with http.stream(
            "GET",
            f"/api/conversations/{conv}/messages",
            params={"stream": "true"},
            headers=headers,
        ) as response:
            rest = await asyncio.wait_for(read_sse(response), 30)
        assert types(rest)[-1] == "done"
        tokens = [e[1]["token"] for e in first + rest if e[1]["type"] == "token"]
        assert tokens == words
        ids = [e[0] for e in first + rest]
        assert ids == sorted(set(ids))


async def snapshot(http: httpx.AsyncClient, org: Org, run_id: str) -> list:
    """Every event of the run stored so far (via the raw event list)."""
    response = await http.get(
        "/api/events", params={"streams": f"run:{run_id}", "limit": 1000}, headers=auth(org)
    )
    return [(e["id"], e["data"]) for e in response.json()["items"]]


async def test_killed_worker_run_resumes_and_a_completed_tool_is_not_executed_again(
    api: RunningApi, org: Org, settings
) -> None:
    hits: list[str] = []

    async def count(request: Request) -> JSONResponse:
        hits.append(request.url.path)
        return JSONResponse({"hits": len(hits)})

    words = [f"w{i} " for i in range(120)]
    async with serve(Starlette(routes=[Route("/count", count)])) as target:
        script = [
            {
                "text": "Calling the counter.",
                "toolCalls": [
                    {
                        "name": "http_request",
                        "arguments": {"method": "GET", "url": f"{target}/count"},
                    }
                ],
            },
            {"text": "".join(words)},
        ]
        async with httpx.AsyncClient(base_url=api.url) as http:
            agent = await create_agent(
                http, org, scripted_agent(script, tools=["http_request"], token_delay_ms=25)
            )
            conv = await create_conversation(http, org, agent["id"])
            with worker_process(settings) as process:
                run_id = await send(http, org, conv, "count once")
                # Wait until the tool has completed and the second answer is under way.
                progress = await run_events(http, org, run_id, until={"tool_result"}, timeout=60)
                assert types(progress)[-1] == "tool_result"
                await run_events(http, org, run_id, until={"token"}, last_event_id=progress[-1][0])
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
            assert hits == ["/count"]
            before = await snapshot(http, org, run_id)
            assert types(before)[-1] == "token"  # the answer was cut off mid-stream
            with worker_process(settings):
                events = await run_events(http, org, run_id, timeout=90)
                assert types(events)[-1] == "done"
                run = await wait_status(http, org, run_id, {"completed"})
        assert hits == ["/count"], "the tool completed before the crash must not run again"
        # Tokens streamed before the crash are not streamed again: every token exactly once.
        assert text_of(events) == "Calling the counter.\n\n" + "".join(words)
        assert run["result"] == "".join(words)
        assert [c["status"] for c in run["toolCalls"]] == ["completed"]


async def test_sdk_stream_survives_a_dropped_connection_without_losing_or_repeating_tokens(
    api: RunningApi, org: Org, worker: Services
) -> None:
    """A TCP proxy cuts the first connection mid-answer; the SDK resumes by Last-Event-ID."""
    connections = 0
    port = int(api.url.rsplit(":", 1)[1])

    async def pump(reader, writer, limit: int | None) -> None:  # type: ignore[no-untyped-def]
        sent = 0
        try:
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
                sent += len(data)
                if limit is not None and sent >= limit:
                    break
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer) -> None:  # type: ignore[no-untyped-def]
        nonlocal connections
        connections += 1
        limit = 6000 if connections == 1 else None  # the first connection dies mid-answer
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(
            pump(client_reader, upstream_writer, None),
            pump(upstream_reader, client_writer, limit),
        )

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy_url = f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    words = [f"piece{i} " for i in range(300)]
    try:
        async with httpx.AsyncClient(base_url=api.url) as http:
            agent = await create_agent(
                http, org, scripted_agent([{"text": "".join(words)}], token_delay_ms=2)
            )
            conv = await create_conversation(http, org, agent["id"])
        async with deeployd.Client(proxy_url, org.admin_key) as client:
            events = [
                event
                async for event in client.conversations.send_message_stream(
                    conversation_id=conv, content="go"
                )
            ]
    finally:
        proxy.close()
        await proxy.wait_closed()
    assert connections >= 2  # it really was cut off and reconnected
    assert [e.token for e in events if e.type == "token"] == words
    assert events[-1].type == "done"
    ids = [e.id for e in events]
    assert ids == sorted(set(ids))
