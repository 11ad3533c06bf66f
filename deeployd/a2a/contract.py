"""What crosses a process boundary for A2A tasks, defined once.

The services start and drive `A2ATaskWorkflow` by these names, the workflow declares itself with
them, and the A2A activities take and return these models. Standard library, pydantic and the
agents' contract only (an A2A task drives an agent run's rows and stream).
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from deeployd.agents.contract import (
    CallModelInput,
    ExecuteToolInput,
    FinishRunInput,
    RunEndStatus,
    RunRef,
    SetStatusInput,
)

# --- states (A2A's own spelling: "canceled") ----------------------------------------------------

# Every state, in the order the docs list them (what the API accepts as a `state` filter).
TASK_STATES = (
    "submitted",
    "working",
    "input-required",
    "completed",
    "failed",
    "canceled",
    "rejected",
    "auth-required",
)
ACTIVE_STATES = frozenset({"submitted", "working", "input-required", "auth-required"})
TERMINAL_STATES = frozenset({"completed", "failed", "canceled", "rejected"})
INTERRUPTED_STATES = frozenset({"input-required", "auth-required"})


def run_status_for(state: str) -> RunEndStatus:
    """The agent run's final status for a task's final state."""
    if state == "completed":
        return "completed"
    if state == "failed":
        return "failed"
    return "cancelled"


# --- Temporal names (never renamed: running histories carry them) -----------------------------

A2A_TASK_WORKFLOW = "A2ATaskWorkflow"
FOLLOW_UP = "follow_up"
"""Update: a caller's message for a task waiting for input (refused by its validator else)."""
CANCEL_REQUESTED = "cancel_requested"
"""Signal sent with every cancel (a cancellation that meets a completing call is dropped)."""
STATE = "state"
"""Query: the task's TaskSnapshot."""

BEGIN_TASK = "a2a_begin_task"
"""Create the task's conversation, run and user message (once), move to working, claim."""
MODEL_TURN = "a2a_model_turn"
"""One model call, its tokens also streamed as chunks of the answer artifact."""
TOOL_CALL = "a2a_tool_call"
"""One tool call; its result becomes a data artifact."""
SET_STATE = "a2a_set_state"
"""Move the task's state (and the run's status, or end the run, alongside)."""
PUSH_NOTIFY = "a2a_push_notify"
"""Deliver the task's new events to its push-notification configs."""


def workflow_id(task_id: str) -> str:
    """The task's A2ATaskWorkflow (one per task)."""
    return f"a2a-task-{task_id}"


# --- the stream ---------------------------------------------------------------------------------


def task_stream(task_id: str) -> str:
    return f"task:{task_id}"


# The wire's event types (what A2A clients and push receivers see): never renamed.
STATUS_UPDATE: Final = "statusUpdate"
ARTIFACT_UPDATE: Final = "artifactUpdate"
MESSAGE: Final = "message"
TASK: Final = "task"
TASK_EVENT_TYPES = frozenset({STATUS_UPDATE, ARTIFACT_UPDATE, MESSAGE})


def answer_artifact_id(task_id: str) -> str:
    return f"{task_id}-answer"


# --- the workflow's inputs and outputs ---------------------------------------------------------


class TaskRef(BaseModel):
    task_id: str
    org_id: str
    agent_id: str
    context_id: str


class A2ATaskInput(BaseModel):
    task: TaskRef


class TaskOutcome(BaseModel):
    state: str
    text: str | None = None


class FollowUpInput(BaseModel):
    message: dict[str, Any]  # the caller's A2A Message JSON


class FollowUpAccepted(BaseModel):
    task_id: str
    state: str


class TaskSnapshot(BaseModel):
    state: str
    question: str | None = None
    turn: int
    pending_tool: str | None = None


# --- the activities' inputs and outputs --------------------------------------------------------


class BeginTaskInput(BaseModel):
    task: TaskRef


class TaskPlan(BaseModel):
    rejected: bool = False
    reason: str | None = None
    run: RunRef | None = None
    claimed: bool = False  # the run holds its conversation (else: claim again later)
    approval_required: list[str] = []
    has_push: bool = False


class ModelTurnInput(BaseModel):
    task: TaskRef
    call: CallModelInput
    artifact_id: str
    answer_started: bool  # a chunk of the answer artifact was already published


class ToolCallInput(BaseModel):
    task: TaskRef
    call: ExecuteToolInput


class SetStateInput(BaseModel):
    task: TaskRef
    state: str
    agent_text: str | None = None  # the agent's message for this status (e.g. its question)
    user_message: dict[str, Any] | None = None  # a caller's follow-up (A2A Message JSON)
    error: str | None = None
    # On completion: the whole answer artifact, published as the last chunk and stored.
    answer: str | None = None
    artifact_id: str | None = None
    # The agent run's own bookkeeping, done in the same activity after the task's update:
    run_status: SetStatusInput | None = None  # running <-> input-required
    finish_run: FinishRunInput | None = None  # the run ends (before the task's final state)


class StateResult(BaseModel):
    has_push: bool
    changed: bool
    already_ended: bool = False  # the task had ended before: nothing was written


class PushInput(BaseModel):
    task: TaskRef
    after: int
