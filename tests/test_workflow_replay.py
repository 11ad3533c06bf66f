"""Recorded histories replay against today's workflow code without non-determinism errors.

A worker that is upgraded while runs are in flight replays their histories with the new code;
a change to a workflow's command sequence that is not guarded by `workflow.patched` fails here
before it fails in production. The histories come from `tests/replay/record_histories.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "replay" / "histories").glob("*.json"))
HISTORY_TEXT = {path.stem: path.read_text() for path in HISTORIES}


def test_every_workflow_family_has_a_recorded_history() -> None:
    recorded = {
        json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"][
            "name"
        ]
        for text in HISTORY_TEXT.values()
    }
    assert {"AgentRunWorkflow", "A2ATaskWorkflow", "PipelineWorkflow"} <= recorded


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path.stem])
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"
