"""Consecutive model turns of a run read as separate paragraphs wherever the answer is joined
(the run stream itself: tests/test_agent_runs_stream.py; here the joining rule and the A2A
answer artifact, streamed chunks and final text)."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from deeployd.agents.turns import TURN_SEPARATOR, join_turns, turn_separator
from deeployd.services import Services
from tests.agent_support import create_agent, scripted_agent
from tests.conftest import Org, RunningApi
from tests.test_agent_runs_stream import CALC_SCRIPT  # two turns with text, a tool between

JOINED = "Let me compute that.\n\nThe answer is 35."

texts = st.lists(st.text(alphabet=st.sampled_from("ab. \n"), max_size=8), max_size=6)


@given(texts)
def test_joined_turns_keep_every_text_in_order_and_never_glue_two_turns(turns: list[str]) -> None:
    joined = join_turns(turns)
    for i in range(1, len(turns) + 1):
        before, so_far = join_turns(turns[: i - 1]), join_turns(turns[:i])
        assert joined.startswith(so_far)  # what a reader has seen never changes
        assert so_far.endswith(turns[i - 1])  # each turn's text arrives whole
        added = so_far[len(before) : len(so_far) - len(turns[i - 1])]
        assert added in ("", TURN_SEPARATOR)
        if before and turns[i - 1]:  # a seam between two texts has whitespace at it
            assert before[-1].isspace() or so_far[len(before)].isspace()
        if added:
            assert not before[-1].isspace() and not turns[i - 1][0].isspace()
    assert turn_separator("a. ", "b") == "" and turn_separator("a.", "\nb") == ""
    assert turn_separator("7.", "The") == TURN_SEPARATOR


async def test_the_a2a_answer_artifact_reads_as_separate_paragraphs(
    api: RunningApi, org: Org, worker: Services, client: Any
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        agent = await create_agent(
            http, org, scripted_agent(CALC_SCRIPT, tools=["calculator"], token_delay_ms=2)
        )
    task = await client.a2a.create_task(agent["id"], "compute")
    chunks: list[str] = []
    async for event in client.a2a.stream_task(task["id"]):
        if event.type == "artifactUpdate" and event.data["artifact"]["name"] == "answer":
            if not event.data["lastChunk"]:
                chunks.append(event.data["chunk"])
    done = await client.a2a.get_task(task["id"])
    assert done["status"]["state"] == "TASK_STATE_COMPLETED"
    answer = next(a for a in done["artifacts"] if a["name"] == "answer")
    assert answer["parts"][0]["text"] == JOINED
    assert "".join(chunks) == JOINED
