"""A message sent while the conversation's run is busy: reject, enqueue, interrupt."""

from __future__ import annotations

import httpx

from deeployd.services import Services
from tests.agent_support import (
    auth,
    create_agent,
    create_conversation,
    run_events,
    scripted_agent,
    send,
    types,
    wait_status,
)
from tests.conftest import Org, RunningApi

SLOW = [{"text": " ".join(f"t{i}" for i in range(60))}]


async def _conversation(http: httpx.AsyncClient, org: Org, multitask: str | None) -> str:
    agent = await create_agent(http, org, scripted_agent(SLOW, token_delay_ms=20))
    extra = {"multitask": multitask} if multitask else {}
    return await create_conversation(http, org, agent["id"], **extra)


async def test_reject_answers_409_while_busy(api: RunningApi, org: Org, worker: Services) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        conv = await _conversation(http, org, "reject")
        first = await send(http, org, conv, "one")
        busy = await http.post(
            f"/api/conversations/{conv}/messages", json={"content": "two"}, headers=auth(org)
        )
        assert busy.status_code == 409, busy.text
        assert first in busy.json()["detail"]
        await run_events(http, org, first)
        await wait_status(http, org, first, {"completed"})
        later = await send(http, org, conv, "three")
        await wait_status(http, org, later, {"completed"})
        messages = (await http.get(f"/api/conversations/{conv}/messages", headers=auth(org))).json()
        assert [m["content"] for m in messages if m["role"] == "user"] == ["one", "three"]


async def test_enqueue_is_the_default_and_runs_in_order(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        conv = await _conversation(http, org, None)
        detail = (await http.get(f"/api/conversations/{conv}", headers=auth(org))).json()
        assert detail["multitask"] == "enqueue"
        first = await send(http, org, conv, "one")
        await run_events(http, org, first, until={"token"})
        second = await send(http, org, conv, "two")
        assert (await wait_status(http, org, second, {"queued"}))["startedAt"] is None
        one = await wait_status(http, org, first, {"completed"})
        assert types(await run_events(http, org, second))[-1] == "done"
        two = await wait_status(http, org, second, {"completed"})
        assert two["startedAt"] >= one["completedAt"]
        messages = (await http.get(f"/api/conversations/{conv}/messages", headers=auth(org))).json()
        assert [(m["role"], m["runId"]) for m in messages] == [
            ("user", first),
            ("user", second),
            ("assistant", first),
            ("assistant", second),
        ]


async def test_interrupt_cancels_the_busy_run_and_runs_the_new_message(
    api: RunningApi, org: Org, worker: Services
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        conv = await _conversation(http, org, "interrupt")
        first = await send(http, org, conv, "one")
        await run_events(http, org, first, until={"token"})
        second = await send(http, org, conv, "two")
        ended = await run_events(http, org, first)
        assert ended[-1][1]["code"] == "cancelled"
        assert (await wait_status(http, org, first, {"cancelled", "completed"}))[
            "status"
        ] == "cancelled"
        assert types(await run_events(http, org, second))[-1] == "done"
        await wait_status(http, org, second, {"completed"})
