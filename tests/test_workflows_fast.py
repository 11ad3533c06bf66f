"""Each workflow against stand-in activities registered under the real activity names.

No database, no model, no HTTP: the workflow's own logic (tool rounds, approvals, timeouts,
input-required, cancellation, dead-lettering) on the session's Temporal server, in a worker
on a fresh task queue. The stand-ins record what the workflow asked for.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from deeployd.a2a.contract import (
    A2ATaskInput,
    BeginTaskInput,
    FollowUpInput,
    ModelTurnInput,
    PushInput,
    SetStateInput,
    StateResult,
    TaskPlan,
    TaskRef,
    ToolCallInput,
)
from deeployd.agents.contract import (
    AgentRunInput,
    ApprovalInput,
    CallModelInput,
    ClaimRunInput,
    ExecuteToolInput,
    FinishResult,
    FinishRunInput,
    ModelTurn,
    RunPlan,
    RunRef,
    SetStatusInput,
    ToolCall,
    ToolOutcome,
)
from deeployd.pipelines import contract
from workflows.a2a_task import A2ATaskWorkflow
from workflows.agent_loop import MAX_TOOL_ROUNDS
from workflows.agent_run import AgentRunWorkflow
from workflows.pipeline import PipelineWorkflow

RUN = RunRef(run_id="run_fast", org_id="org_fast", agent_id="agent_fast", conversation_id="conv")


def _turn(text: str = "", calls: Sequence[ToolCall] = ()) -> ModelTurn:
    return ModelTurn(
        text=text,
        text_chars=len(text),
        tool_calls=list(calls),
        prompt_tokens=10,
        completion_tokens=5,
        cost=0.001,
    )


class AgentRunStandIns:
    """The agent-run activities, scripted: `turns[i]` is what the model says on turn i."""

    def __init__(self, turns: Callable[[int], ModelTurn], **plan: Any) -> None:
        self.turns = turns
        self.plan = plan
        self.tools: list[ExecuteToolInput] = []
        self.statuses: list[str] = []
        self.finished: list[FinishRunInput] = []

    @activity.defn(name="claim_run")
    async def claim_run(self, request: ClaimRunInput) -> RunPlan:
        return RunPlan(claimed=True, status="running", agent_name="fast", **self.plan)

    @activity.defn(name="call_model")
    async def call_model(self, request: CallModelInput) -> ModelTurn:
        return self.turns(request.turn)

    @activity.defn(name="execute_tool")
    async def execute_tool(self, request: ExecuteToolInput) -> ToolOutcome:
        self.tools.append(request)
        return ToolOutcome(tool_call_id=request.call.id, ok=request.decision != "rejected")

    @activity.defn(name="set_status")
    async def set_status(self, request: SetStatusInput) -> None:
        self.statuses.append(request.status)

    @activity.defn(name="finish_run")
    async def finish_run(self, request: FinishRunInput) -> FinishResult:
        self.finished.append(request)
        return FinishResult()

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.claim_run,
            self.call_model,
            self.execute_tool,
            self.set_status,
            self.finish_run,
        ]


@asynccontextmanager
async def _worker(
    client: TemporalClient, workflows: list[type], activities: list[Callable[..., Any]]
) -> AsyncIterator[str]:
    task_queue = f"fast-{uuid.uuid4().hex[:12]}"
    async with Worker(client, task_queue=task_queue, workflows=workflows, activities=activities):
        yield task_queue


async def _start_run(client: TemporalClient, task_queue: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        AgentRunWorkflow.run,
        AgentRunInput(run=RUN),
        id=f"fast-run-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


async def _until(probe: Callable[[], Any], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await probe():  # noqa: ASYNC110  (a workflow query has no change event)
            await asyncio.sleep(0.05)


async def _run_status(handle: WorkflowHandle[Any, Any], status: str) -> bool:
    state = await handle.query(AgentRunWorkflow.state)
    return bool(state.status == status)


CALC = ToolCall(id="call_1", name="calculator", arguments={"expression": "1+1"})


async def test_agent_run_tool_round_with_approval(temporal_client: TemporalClient) -> None:
    stand_ins = AgentRunStandIns(
        lambda turn: _turn("thinking", [CALC]) if turn == 0 else _turn("2"),
        approval_required=["calculator"],
    )
    async with _worker(temporal_client, [AgentRunWorkflow], stand_ins.all()) as queue:
        handle = await _start_run(temporal_client, queue)
        await _until(lambda: _run_status(handle, "input-required"))
        state = await handle.query(AgentRunWorkflow.state)
        assert [p["toolCallId"] for p in state.pending_approvals] == ["call_1"]
        with pytest.raises(WorkflowUpdateFailedError):  # an unknown call is refused
            await handle.execute_update(
                AgentRunWorkflow.approve, ApprovalInput(tool_call_id="nope", approved=True)
            )
        accepted = await handle.execute_update(
            AgentRunWorkflow.approve, ApprovalInput(tool_call_id="call_1", approved=True)
        )
        assert accepted.approved
        outcome = await handle.result()
        final = await handle.query(AgentRunWorkflow.state)
    assert outcome.status == "completed" and outcome.text == "2"
    assert [(t.call.id, t.decision) for t in stand_ins.tools] == [("call_1", "approved")]
    assert stand_ins.statuses == ["input-required", "running"]
    assert [f.status for f in stand_ins.finished] == ["completed"]
    assert stand_ins.finished[0].final_turn == 1
    assert (final.prompt_tokens, final.completion_tokens) == (20, 10)


async def test_agent_run_approval_timeout_rejects(temporal_client: TemporalClient) -> None:
    stand_ins = AgentRunStandIns(
        lambda turn: _turn("", [CALC]) if turn == 0 else _turn("ok"),
        approval_required=["calculator"],
        approval_timeout_ms=1000,
    )
    async with _worker(temporal_client, [AgentRunWorkflow], stand_ins.all()) as queue:
        outcome = await (await _start_run(temporal_client, queue)).result()
    assert outcome.status == "completed"
    assert [(t.decision, t.comment) for t in stand_ins.tools] == [
        ("rejected", "no decision before the approval timeout")
    ]


async def test_agent_run_stops_after_the_tool_round_limit(temporal_client: TemporalClient) -> None:
    stand_ins = AgentRunStandIns(lambda turn: _turn("again", [CALC.model_copy()]))
    async with _worker(temporal_client, [AgentRunWorkflow], stand_ins.all()) as queue:
        handle = await _start_run(temporal_client, queue)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "max_iterations"
    assert len(stand_ins.tools) == MAX_TOOL_ROUNDS
    assert [(f.status, f.error_code) for f in stand_ins.finished] == [("failed", "max_iterations")]


async def test_agent_run_cancelled_while_waiting_for_approval(
    temporal_client: TemporalClient,
) -> None:
    stand_ins = AgentRunStandIns(lambda turn: _turn("", [CALC]), approval_required=["calculator"])
    async with _worker(temporal_client, [AgentRunWorkflow], stand_ins.all()) as queue:
        handle = await _start_run(temporal_client, queue)
        await _until(lambda: _run_status(handle, "input-required"))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert stand_ins.tools == []
    assert [(f.status, f.error_code) for f in stand_ins.finished] == [("cancelled", "cancelled")]


# --- A2A task ---------------------------------------------------------------------------------

TASK = TaskRef(task_id="task_fast", org_id="org_fast", agent_id="agent_fast", context_id="ctx")
ASK = ToolCall(id="call_ask", name="ask_user", arguments={"question": "Which city?"})


class A2AStandIns:
    def __init__(self, turns: Callable[[int], ModelTurn]) -> None:
        self.turns = turns
        self.states: list[str] = []
        self.tools: list[ToolCallInput] = []
        self.finished: list[str] = []

    @activity.defn(name="a2a_begin_task")
    async def begin_task(self, request: BeginTaskInput) -> TaskPlan:
        return TaskPlan(run=RUN, claimed=True)

    @activity.defn(name="a2a_model_turn")
    async def model_turn(self, request: ModelTurnInput) -> ModelTurn:
        return self.turns(request.call.turn)

    @activity.defn(name="a2a_tool_call")
    async def tool_call(self, request: ToolCallInput) -> ToolOutcome:
        self.tools.append(request)
        return ToolOutcome(tool_call_id=request.call.call.id, ok=True)

    @activity.defn(name="a2a_set_state")
    async def set_state(self, request: SetStateInput) -> StateResult:
        self.states.append(request.state)
        if request.finish_run is not None:
            self.finished.append(request.finish_run.status)
        return StateResult(has_push=False, changed=True)

    @activity.defn(name="a2a_push_notify")
    async def push_notify(self, request: PushInput) -> int:
        return request.after

    @activity.defn(name="execute_tool")
    async def execute_tool(self, request: ExecuteToolInput) -> ToolOutcome:
        return ToolOutcome(tool_call_id=request.call.id, ok=False)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.begin_task,
            self.model_turn,
            self.tool_call,
            self.set_state,
            self.push_notify,
            self.execute_tool,
        ]


async def _task_state(handle: WorkflowHandle[Any, Any], state: str) -> bool:
    snapshot = await handle.query(A2ATaskWorkflow.state)
    return bool(snapshot.state == state)


async def test_a2a_task_input_required_and_follow_up(temporal_client: TemporalClient) -> None:
    stand_ins = A2AStandIns(lambda turn: _turn("", [ASK]) if turn == 0 else _turn("Sunny."))
    async with _worker(temporal_client, [A2ATaskWorkflow], stand_ins.all()) as queue:
        handle = await temporal_client.start_workflow(
            A2ATaskWorkflow.run,
            A2ATaskInput(task=TASK),
            id=f"fast-task-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        await _until(lambda: _task_state(handle, "input-required"))
        snapshot = await handle.query(A2ATaskWorkflow.state)
        assert snapshot.question == "Which city?"
        reply = {"role": "ROLE_USER", "parts": [{"text": "Paris"}], "messageId": "m1"}
        await handle.execute_update(A2ATaskWorkflow.follow_up, FollowUpInput(message=reply))
        with pytest.raises(WorkflowUpdateFailedError):  # no longer waiting: refused
            await handle.execute_update(A2ATaskWorkflow.follow_up, FollowUpInput(message=reply))
        outcome = await handle.result()
    assert outcome.state == "completed" and outcome.text == "Sunny."
    assert stand_ins.states == ["input-required", "working", "completed"]
    assert [t.call.decision for t in stand_ins.tools] == ["approved"]
    assert stand_ins.finished == ["completed"]


# --- pipeline ---------------------------------------------------------------------------------


class PipelineStandIns:
    """A log of `items` items delivered `batch` at a time; `fail_batches` batches fail first."""

    def __init__(self, items: int, batch: int, fail_batches: int = 0) -> None:
        self.items, self.batch, self.fail_batches = items, batch, fail_batches
        self.modes: list[str] = []
        self.statuses: list[str] = []
        self.saved: list[contract.PipelineState] = []

    @activity.defn(name="pipeline_process_batch")
    async def process_batch(self, req: contract.ProcessBatchInput) -> contract.ProcessBatchResult:
        self.modes.append(req.mode)
        if req.mode == "deliver" and self.fail_batches:
            self.fail_batches -= 1
            raise ApplicationError("HTTP 400 from the receiver", non_retryable=True)
        state = req.state.model_copy(deep=True)
        start = state.committed_offset
        end = min(self.items, start + self.batch) if req.mode != "flush" else start
        if req.mode == "deliver" and end == start:
            await asyncio.sleep(0.05)  # an idle log: the real activity waits for a NOTIFY
        state.committed_offset = end
        state.counters.processed += end - start
        if req.mode == "dead_letter":
            state.counters.dead_lettered += end - start
        else:
            state.counters.delivered += end - start
        return contract.ProcessBatchResult(
            state=state, delta=state.counters, items=end - start, last_offset=self.items
        )

    @activity.defn(name="pipeline_save_checkpoint")
    async def save_checkpoint(self, req: contract.SaveCheckpointInput) -> str:
        return f"ckpt_{req.state.committed_offset}"

    @activity.defn(name="pipeline_save_state")
    async def save_state(self, req: contract.SaveStateInput) -> None:
        self.saved.append(req.state)

    @activity.defn(name="pipeline_set_status")
    async def set_status(self, req: contract.SetStatusInput) -> None:
        self.statuses.append(req.status)

    @activity.defn(name="pipeline_replay_dead_letters")
    async def replay_dead_letters(self, req: contract.ReplayInput) -> contract.ReplayResult:
        return contract.ReplayResult()

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.process_batch,
            self.save_checkpoint,
            self.save_state,
            self.set_status,
            self.replay_dead_letters,
        ]


async def test_pipeline_dead_letters_a_failed_batch_checkpoints_and_stops(
    temporal_client: TemporalClient,
) -> None:
    stand_ins = PipelineStandIns(items=30, batch=10, fail_batches=1)
    async with _worker(temporal_client, [PipelineWorkflow], stand_ins.all()) as queue:
        handle = await temporal_client.start_workflow(
            PipelineWorkflow.run,
            contract.PipelineWorkflowInput(
                org_id="org_fast",
                pipeline_id="pl_fast",
                name="fast",
                source_type="webhook",
                destination_type="webhook",
            ),
            id=f"fast-pipeline-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )

        async def drained() -> bool:
            metrics = await handle.query(PipelineWorkflow.metrics)
            return bool(metrics["committedOffset"] == 30)

        await _until(drained)
        checkpoint = await handle.execute_update(PipelineWorkflow.create_checkpoint)
        assert checkpoint == {"id": "ckpt_30", "offset": 30}
        await handle.signal(PipelineWorkflow.stop)
        final = await handle.result()
    # The failing batch was handed back once in dead-letter mode, then delivery went on.
    assert stand_ins.modes[:3] == ["deliver", "dead_letter", "deliver"]
    assert stand_ins.modes[-1] == "flush"
    assert final.committed_offset == 30
    assert (final.counters.dead_lettered, final.counters.delivered) == (10, 20)
    assert stand_ins.saved[-1].committed_offset == 30
    assert stand_ins.statuses == ["stopped"]
