"""The docs' REST API for A2A tasks: create, get, list, answer, cancel, and the task stream
(`task` first, then `message` / `statusUpdate` / `artifactUpdate` in order, resumable)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from deeployd.sdk.sse import parse_sse
from tests.agent_support import auth, create_agent, scripted_agent
from tests.conftest import make_org

ASK_SCRIPT = [
    {"toolCalls": [{"name": "ask_user", "arguments": {"question": "Which city?"}}]},
    {"text": "The weather in {{lastToolResult.answer}} is sunny today, enjoy it."},
]
FINAL = "The weather in Paris is sunny today, enjoy it."


def sse_events(response: httpx.Response) -> Any:
    assert response.status_code == 200
    return parse_sse(response.aiter_lines())


async def read_until(
    frames: Any, stop: Any, events: list[tuple[int | None, dict[str, Any]]]
) -> None:
    async for event_id, data, _retry in frames:
        if data is None:
            continue
        event = json.loads(data)
        events.append((int(event_id) if event_id else None, event))
        if stop(event):
            return


def is_state(state: str) -> Any:
    return lambda e: e["type"] == "statusUpdate" and e["state"] == state


def summary(events: list[tuple[int | None, dict[str, Any]]]) -> list[str]:
    out = []
    for _, e in events:
        if e["type"] == "statusUpdate":
            out.append(f"status:{e['state']}")
        elif e["type"] == "message":
            out.append(f"message:{e['message']['role']}")
        elif e["type"] == "artifactUpdate":
            out.append("artifact:last" if e["lastChunk"] else "artifact")
        else:
            out.append(e["type"])
    return out


async def test_rest_stream_delivers_the_task_flow_in_order_and_resumes(api, worker, org):
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(
            http, org, scripted_agent(ASK_SCRIPT, tools=["ask_user"], token_delay_ms=2)
        )
        created = await http.post(
            "/api/a2a/tasks", json={"agentId": agent["id"], "message": "What's the weather?"}
        )
        assert created.status_code == 201, created.text
        task = created.json()
        task_id = task["id"]
        assert task["status"]["state"] == "TASK_STATE_SUBMITTED"

        events: list[tuple[int | None, dict[str, Any]]] = []
        async with http.stream("GET", f"/api/a2a/tasks/{task_id}/stream") as response:
            frames = sse_events(response)
            await read_until(frames, is_state("input-required"), events)
            waiting = await http.get(f"/api/a2a/tasks/{task_id}")
            assert waiting.json()["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
            assert waiting.json()["status"]["message"]["parts"][0]["text"] == "Which city?"
            answered = await http.post(
                f"/api/a2a/tasks/{task_id}/messages", json={"content": "Paris"}
            )
            assert answered.status_code == 202, answered.text
            await read_until(frames, is_state("completed"), events)

        assert events[0][0] is None and events[0][1]["type"] == "task"
        assert events[0][1]["task"]["id"] == task_id
        flow = summary(events)
        assert flow[:6] == [
            "task",
            "message:ROLE_USER",
            "status:submitted",
            "status:working",
            "message:ROLE_AGENT",
            "status:input-required",
        ]
        after_answer = flow[6:]
        assert after_answer[:2] == ["message:ROLE_USER", "status:working"]
        assert after_answer[-2:] == ["artifact:last", "status:completed"]
        assert set(after_answer[2:-2]) == {"artifact"}
        chunks = [e for _, e in events if e["type"] == "artifactUpdate" and not e["lastChunk"]]
        assert "".join(c["chunk"] for c in chunks) == FINAL
        last = next(e for _, e in events if e["type"] == "artifactUpdate" and e["lastChunk"])
        assert last["artifact"]["parts"][0]["text"] == FINAL
        assert events[-1][1]["final"] is True
        ids = [i for i, _ in events if i is not None]
        assert ids == sorted(ids)

        # Resume after the input-required update: the snapshot, then only what came after.
        mark = next(
            i for i, e in events if e["type"] == "statusUpdate" and e["state"] == "input-required"
        )
        resumed: list[tuple[int | None, dict[str, Any]]] = []
        async with http.stream(
            "GET", f"/api/a2a/tasks/{task_id}/stream", headers={"Last-Event-ID": str(mark)}
        ) as response:
            await read_until(sse_events(response), is_state("completed"), resumed)
        assert resumed[0][1]["type"] == "task"
        assert resumed[0][1]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
        assert resumed[1:] == [ev for ev in events if ev[0] is not None and ev[0] > mark]

        # The finished task, its listing, and what can no longer be done to it.
        got = (await http.get(f"/api/a2a/tasks/{task_id}")).json()
        assert got["status"]["state"] == "TASK_STATE_COMPLETED"
        assert got["artifacts"][0]["parts"][0]["text"] == FINAL
        listed = (await http.get("/api/a2a/tasks", params={"state": "completed"})).json()
        assert [t["id"] for t in listed["tasks"]] == [task_id]
        late = await http.post(f"/api/a2a/tasks/{task_id}/messages", json={"content": "again"})
        assert late.status_code == 409
        assert (await http.post(f"/api/a2a/tasks/{task_id}/cancel")).status_code == 409


async def test_rest_cancel_bad_input_and_isolation(api, worker, org):
    slow = [{"text": " ".join(["word"] * 300)}]
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent(slow, token_delay_ms=20))
        bad = await http.post("/api/a2a/tasks", json={"agentId": agent["id"], "message": ""})
        assert bad.status_code == 422
        assert any(e.startswith("message") for e in bad.json()["errors"])
        bad_part = await http.post(
            "/api/a2a/tasks",
            json={"agentId": agent["id"], "message": {"parts": [{"text": "ok"}, {}]}},
        )
        assert bad_part.status_code == 422
        assert bad_part.json()["errors"] == ["message.parts[1]: a part needs text or data"]
        unknown = await http.post("/api/a2a/tasks", json={"agentId": "agent_nope", "message": "hi"})
        assert unknown.status_code == 404
        bad_state = await http.get("/api/a2a/tasks", params={"state": "sleeping"})
        assert bad_state.status_code == 422

        task_id = (
            await http.post("/api/a2a/tasks", json={"agentId": agent["id"], "message": "go"})
        ).json()["id"]
        async with http.stream("GET", f"/api/a2a/tasks/{task_id}/stream") as response:
            seen: list[tuple[int | None, dict[str, Any]]] = []
            await read_until(sse_events(response), lambda e: e["type"] == "artifactUpdate", seen)
        early = await http.post(f"/api/a2a/tasks/{task_id}/messages", json={"content": "hm"})
        assert early.status_code == 409  # not waiting for input
        canceled = await http.post(f"/api/a2a/tasks/{task_id}/cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"]["state"] == "TASK_STATE_CANCELED"

        other = await make_org(api.settings)
        foreign = await http.get(f"/api/a2a/tasks/{task_id}", headers=auth(other))
        assert foreign.status_code == 404
        assert (await http.get("/api/a2a/tasks", headers=auth(other))).json()["tasks"] == []
        stream = await http.get(f"/api/a2a/tasks/{task_id}/stream", headers=auth(other))
        assert stream.status_code == 404


async def test_a_tool_needing_approval_waits_for_a_follow_up(api, worker, org, client):
    script = [
        {"toolCalls": [{"name": "calculator", "arguments": {"expression": "6 * 7"}}]},
        {"text": "Result: {{lastToolResult}}"},
    ]
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(
            http,
            org,
            scripted_agent(script, tools=["calculator"], approval_required=["calculator"]),
        )
    task = await client.a2a.create_task(agent["id"], "compute")
    seen = []
    async for event in client.a2a.stream_task(task["id"]):
        seen.append(event.data)
        if event.type == "statusUpdate" and event.data["state"] == "input-required":
            question = event.data["message"]["parts"][0]["text"]
            assert "calculator" in question
            await client.a2a.send_message(task["id"], "no, don't")
    done = await client.a2a.get_task(task["id"])
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    answer = done["artifacts"][0]["parts"][0]["text"]
    assert "not approved" in answer  # the model was told the call was rejected
    assert not any(a["name"] == "tool:calculator" for a in done["artifacts"])


async def test_failure_cancel_while_waiting_and_the_default_card(api, worker, org, client):
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        assert (await http.get("/.well-known/agent-card.json")).status_code == 404  # no agent yet
        broken = await create_agent(
            http,
            org,
            scripted_agent(
                [{"text": "partial", "error": {"message": "model overloaded", "code": "boom"}}],
                name="first",
            ),
        )
        asker = await create_agent(http, org, scripted_agent(ASK_SCRIPT, tools=["ask_user"]))
        card = await http.get("/.well-known/agent-card.json")
        assert card.status_code == 200
        assert card.json()["name"] == "first"  # the organisation's oldest agent
        interfaces = card.json()["supportedInterfaces"]
        assert {i["url"] for i in interfaces} == {
            f"{api.url}/a2a/agents/{broken['id']}",
            f"{api.url}/a2a/agents/{broken['id']}/rest",
        }

    failed = await client.a2a.create_task(broken["id"], "hello")
    events = [e.data async for e in client.a2a.stream_task(failed["id"])]
    assert events[-1]["state"] == "failed"
    assert events[-1]["message"]["parts"][0]["text"] == "model overloaded"

    waiting = await client.a2a.create_task(asker["id"], "hello")
    async for event in client.a2a.stream_task(waiting["id"]):
        if event.type == "statusUpdate" and event.data["state"] == "input-required":
            canceled = await client.a2a.cancel_task(waiting["id"])
            assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    runs = await client.request("GET", "/api/runs", params={"agentId": asker["id"]})
    assert [r["status"] for r in runs] == ["cancelled"]


async def test_tasks_of_one_context_share_the_agents_conversation(api, worker, org, client):
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30) as http:
        agent = await create_agent(http, org, scripted_agent([{"text": "noted"}]))
    first = await client.a2a.create_task(agent["id"], "my name is Ada")
    [e async for e in client.a2a.stream_task(first["id"])]
    second = await client.a2a.create_task(
        agent["id"], "what is my name?", context_id=first["contextId"]
    )
    [e async for e in client.a2a.stream_task(second["id"])]
    other = await client.a2a.create_task(agent["id"], "unrelated")
    [e async for e in client.a2a.stream_task(other["id"])]

    in_context = await client.a2a.list_tasks(context_id=first["contextId"])
    assert sorted(t["id"] for t in in_context["tasks"]) == sorted([first["id"], second["id"]])
    runs = await client.request("GET", "/api/runs", params={"agentId": agent["id"]})
    conversations = {r["conversationId"] for r in runs}
    assert len(runs) == 3 and len(conversations) == 2  # the second task saw the first exchange
