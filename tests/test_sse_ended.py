"""A stream that has ended stays ended: reconnects after the end are answered 204 (what makes a
browser's EventSource stop), while a first connection still replays from the beginning."""

from __future__ import annotations

import random
from typing import Any

import httpx

import deeployd
from api.sse_ended import READER_COOKIE, EndedStreams
from deeployd.services import Services
from tests.agent_support import auth, create_agent, create_conversation, read_sse, scripted_agent
from tests.conftest import Org, RunningApi

ASK_SCRIPT = [
    {"toolCalls": [{"name": "ask_user", "arguments": {"question": "Which city?"}}]},
    {"text": "Sunny in {{lastToolResult.answer}}."},
]


async def finished_conversation(http: httpx.AsyncClient, org: Org) -> tuple[str, str]:
    agent = await create_agent(http, org, scripted_agent([{"text": "All good here."}]))
    conv = await create_conversation(http, org, agent["id"])
    response = await http.post(
        f"/api/conversations/{conv}/messages",
        params={"wait": "true"},
        json={"content": "hi"},
        headers=auth(org),
    )
    assert response.status_code == 200, response.text
    return conv, str(response.json()["runId"])


async def attach(
    http: httpx.AsyncClient, path: str, org: Org, **headers: str
) -> tuple[int, list[tuple[int | None, dict[str, Any]]], httpx.Headers]:
    params = {"stream": "true", "access_token": org.admin_key}
    async with http.stream("GET", path, params=params, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, [], response.headers
        return 200, await read_sse(response), response.headers


async def test_a_browser_that_saw_done_is_told_204_on_every_reconnect_without_an_id(
    api: RunningApi, worker: Services, org: Org
) -> None:
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=30) as browser,
        httpx.AsyncClient(base_url=api.url, timeout=30) as other_browser,
    ):
        conv, run_id = await finished_conversation(browser, org)
        path = f"/api/conversations/{conv}/messages"
        # First connection (no id, no cookie): the whole run, and a reader cookie.
        status, events, headers = await attach(browser, path, org)
        assert status == 200
        assert [e["type"] for _, e in events] == ["token", "token", "token", "done"]
        assert READER_COOKIE in headers.get("set-cookie", "")
        assert browser.cookies.get(READER_COOKIE)
        # The docs' helper builds a new EventSource: no Last-Event-ID, same cookie jar.
        for _ in range(3):
            status, events, headers = await attach(browser, path, org)
            assert (status, events) == (204, [])
            assert headers["x-run-id"] == run_id
        # Another browser has seen nothing: it gets the replay.
        status, events, _ = await attach(other_browser, path, org)
        assert status == 200 and events[-1][1]["type"] == "done"
        # A Last-Event-ID at or past `done` is ended for anyone; before it, the rest is replayed.
        done_id = events[-1][0]
        assert done_id is not None
        fresh = httpx.AsyncClient(base_url=api.url, timeout=30)
        async with fresh:
            for last in (done_id, done_id + 1000):
                status, _, _ = await attach(fresh, path, org, **{"Last-Event-ID": str(last)})
                assert status == 204
            status, rest, _ = await attach(fresh, path, org, **{"Last-Event-ID": str(done_id - 1)})
            assert status == 200 and [e for e in rest] == [events[-1]]
            # lastEventId=0 asks for the whole run explicitly, whatever this reader saw before.
            status, again, _ = await attach(browser, path, org, **{"Last-Event-ID": "0"})
            assert status == 200 and again == events


async def test_a_run_stream_resumed_at_its_end_is_204_and_the_sdk_stops(
    api: RunningApi, worker: Services, org: Org, client: deeployd.Client
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        _, run_id = await finished_conversation(http, org)
        path = f"/api/runs/{run_id}/stream"
        status, events, _ = await attach(http, path, org)
        assert status == 200 and events[-1][1]["type"] == "done"
        done_id = str(events[-1][0])
        assert (await attach(http, path, org, **{"Last-Event-ID": done_id}))[0] == 204
        # Without an id the run stream keeps replaying for anyone (it does not remember readers).
        assert (await attach(http, path, org))[1] == events
    # The Python SDK keeps no cookies: reading the conversation's ended run again replays it.
    conv = (await client.runs.get(run_id))["conversationId"]
    for _ in range(2):
        assert [e.type async for e in client.conversations.stream(conv)][-1] == "done"
    # The Python SDK reads a 204 as the end of the stream, not as a reason to reconnect.
    stream = client.stream(path, last_event_id=int(done_id), max_attempts=0)
    assert [e async for e in stream] == []


async def test_an_ended_a2a_task_stream_is_204_for_its_browser_and_at_its_final_id(
    api: RunningApi, worker: Services, org: Org, client: deeployd.Client
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as browser:
        agent = await create_agent(browser, org, scripted_agent(ASK_SCRIPT, tools=["ask_user"]))
        task = await client.a2a.create_task(agent["id"], "weather?")
        seen = []
        async for event in client.a2a.stream_task(task["id"]):
            seen.append(event)
            if event.type == "statusUpdate" and event.data["state"] == "input-required":
                await client.a2a.send_message(task["id"], "Paris")
        final_id = seen[-1].id
        path = f"/api/a2a/tasks/{task['id']}/stream"
        status, events, _ = await attach(browser, path, org)
        assert status == 200 and events[0][1]["type"] == "task"
        assert events[-1][1]["final"] is True and events[-1][0] == final_id
        assert (await attach(browser, path, org))[0] == 204
        assert (await attach(browser, path, org, **{"Last-Event-ID": "0"}))[0] == 200
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as fresh:
        assert (await attach(fresh, path, org, **{"Last-Event-ID": str(final_id)}))[0] == 204
        assert (await attach(fresh, path, org))[0] == 200


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_memory_of_ended_streams_is_bounded_and_expires() -> None:
    rng = random.Random(7)
    for _ in range(200):
        steps = [
            (rng.choice("abcdef"), rng.choice("xyz"), rng.uniform(0, 100))
            for _ in range(rng.randrange(60))
        ]
        check_memory(steps)


def check_memory(steps: list[tuple[str, str, float]]) -> None:
    clock = Clock()
    ended = EndedStreams(capacity=5, ttl_seconds=50, clock=clock)
    last: dict[tuple[str, str], float] = {}
    for reader, key, dt in steps:
        clock.now += dt
        ended.record(reader, key)
        last[(reader, key)] = clock.now
        assert len(ended) <= 5
        assert ended.seen(reader, key)
    assert ended.seen("nobody", "x") is False
    clock.now += 51
    assert not any(ended.seen(reader, key) for reader, key in last)
    assert len(ended) == 0
