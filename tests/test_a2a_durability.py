"""A task waiting in input-required survives its worker being killed (-9): after a restart, the
follow-up message still completes it."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import httpx

from tests.agent_support import auth, create_agent, scripted_agent
from tests.conftest import worker_process

ASK_SCRIPT = [
    {"toolCalls": [{"name": "ask_user", "arguments": {"question": "Which city?"}}]},
    {"text": "Booked a table in {{lastToolResult.answer}}."},
]


async def wait_for_state(
    http: httpx.AsyncClient, task_id: str, state: str, timeout: float = 60
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            task = (await http.get(f"/api/a2a/tasks/{task_id}")).json()
            if task["status"]["state"] == state:
                return dict(task)
            await asyncio.sleep(0.1)


async def test_follow_up_completes_the_task_after_the_worker_was_killed(api, org):
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=60) as http:
        agent = await create_agent(http, org, scripted_agent(ASK_SCRIPT, tools=["ask_user"]))
        with worker_process(api.settings) as first:
            created = await http.post(
                "/api/a2a/tasks", json={"agentId": agent["id"], "message": "Book me a table"}
            )
            task_id = created.json()["id"]
            await wait_for_state(http, task_id, "TASK_STATE_INPUT_REQUIRED")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)

        with worker_process(api.settings):
            answered = await http.post(
                f"/api/a2a/tasks/{task_id}/messages", json={"content": "Lisbon"}
            )
            assert answered.status_code == 202, answered.text
            done = await wait_for_state(http, task_id, "TASK_STATE_COMPLETED")
        assert done["artifacts"][0]["parts"][0]["text"] == "Booked a table in Lisbon."
        assert [m["parts"][0]["text"] for m in done["history"]] == [
            "Book me a table",
            "Which city?",
            "Lisbon",
        ]
