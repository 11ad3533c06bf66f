"""memory_write / memory_search on the real database, scoped per organisation and conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from deeployd.agents.tools import ToolContext, ToolError, memory, run_tool
from deeployd.services import Services
from deeployd.settings import Settings
from tests.conftest import make_org


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = await Services.open(settings, with_temporal=False)
    try:
        yield services
    finally:
        await services.close()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    async def __call__(self, event_type: str, data: dict) -> None:
        self.events.append((event_type, data))


def ctx(services: Services, org_id: str, conversation_id: str, recorder: Recorder) -> ToolContext:
    return ToolContext(org_id, "run_1", conversation_id, "agent_1", services, recorder)


async def test_memories_are_scoped_to_org_and_conversation_and_ranked(services: Services) -> None:
    org_a, org_b = (await make_org(services.settings)).id, (await make_org(services.settings)).id
    recorder = Recorder()
    here = ctx(services, org_a, "conv_1", recorder)
    for content in (
        "The user's favourite colour is teal.",
        "Team meeting moved to Friday at 10:00.",
        "Teal paint arrives Friday; the favourite colour order is confirmed.",
    ):
        written = await run_tool("memory_write", {"content": content}, here)
        assert written["stored"] is True and written["id"].startswith("mem_")
    # Same words elsewhere: another conversation of the same org, the same conversation id in
    # another org. Neither may leak into conv_1 of org A.
    await run_tool(
        "memory_write",
        {"content": "teal teal teal favourite colour"},
        ctx(services, org_a, "conv_2", recorder),
    )
    await run_tool(
        "memory_write",
        {"content": "teal favourite colour"},
        ctx(services, org_b, "conv_1", recorder),
    )

    found = await run_tool("memory_search", {"query": "TEAL"}, here)
    assert {m["content"] for m in found["memories"]} == {
        "The user's favourite colour is teal.",
        "Teal paint arrives Friday; the favourite colour order is confirmed.",
    }
    assert len(found["memories"]) == 2

    # Ranked by how many query words a memory contains.
    ranked = await run_tool("memory_search", {"query": "favourite colour friday"}, here)
    assert ranked["memories"][0]["content"].startswith("Teal paint arrives Friday")
    assert ranked["memories"][0]["matches"] == 3
    assert [m["matches"] for m in ranked["memories"]] == sorted(
        (m["matches"] for m in ranked["memories"]), reverse=True
    )
    assert len(ranked["memories"]) == 3

    # Full text stemming finds "meeting" from "meetings"; nothing matches "zebra".
    stemmed = await run_tool("memory_search", {"query": "meetings"}, here)
    assert [m["content"] for m in stemmed["memories"]] == ["Team meeting moved to Friday at 10:00."]
    assert (await run_tool("memory_search", {"query": "zebra"}, here))["memories"] == []

    # Empty query: the newest first; limit respected.
    recent = await run_tool("memory_search", {"limit": 2}, here)
    assert [m["content"] for m in recent["memories"]] == [
        "Teal paint arrives Friday; the favourite colour order is confirmed.",
        "Team meeting moved to Friday at 10:00.",
    ]

    # Other scopes see only their own.
    other_org = await run_tool(
        "memory_search", {"query": "teal"}, ctx(services, org_b, "conv_1", recorder)
    )
    assert [m["content"] for m in other_org["memories"]] == ["teal favourite colour"]

    ops = [data for event_type, data in recorder.events if event_type == "run:memory_op"]
    assert len(ops) == len(recorder.events) == 11
    assert ops[0] == {
        "op": "write",
        "conversationId": "conv_1",
        "memoryId": ops[0]["memoryId"],
        "chars": 36,
    }
    assert {"op": "search", "conversationId": "conv_1", "query": "TEAL", "results": 2} in ops


async def test_like_wildcards_in_queries_are_literal(services: Services) -> None:
    org = (await make_org(services.settings)).id
    here = ctx(services, org, "conv_w", Recorder())
    await run_tool("memory_write", {"content": "plain words only"}, here)
    # "_" is a LIKE wildcard; escaped, "_ords" must not match "words".
    assert (await run_tool("memory_search", {"query": "_ords"}, here))["memories"] == []
    found = await run_tool("memory_search", {"query": "WORDS"}, here)
    assert [m["content"] for m in found["memories"]] == ["plain words only"]


async def test_memory_arguments_and_the_per_conversation_cap(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = (await make_org(services.settings)).id
    here = ctx(services, org, "conv_cap", Recorder())
    with pytest.raises(ToolError, match="content: String should have at least 1 character"):
        await run_tool("memory_write", {"content": ""}, here)
    with pytest.raises(ToolError, match="limit: Input should be less than or equal to 20"):
        await run_tool("memory_search", {"query": "x", "limit": 500}, here)
    monkeypatch.setattr(memory, "MAX_MEMORIES_PER_CONVERSATION", 2)
    await run_tool("memory_write", {"content": "one"}, here)
    await run_tool("memory_write", {"content": "two"}, here)
    with pytest.raises(ToolError, match="already has 2 memories"):
        await run_tool("memory_write", {"content": "three"}, here)
