"""What crosses a process boundary for agent runs and alert sweeps, defined once.

The API starts and drives workflows by these names, the workflows declare themselves with them,
and the activities take and return these models (payloads are JSON on Temporal, so a model's
module is free to move; its fields and defaults are not). Standard library and pydantic only:
the workflow sandbox imports this module.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# --- statuses ---------------------------------------------------------------------------------

RunStatus = Literal["queued", "running", "input-required", "completed", "failed", "cancelled"]
RunEndStatus = Literal["completed", "failed", "cancelled"]
ACTIVE: tuple[RunStatus, ...] = ("queued", "running", "input-required")
TERMINAL: tuple[RunEndStatus, ...] = ("completed", "failed", "cancelled")

# --- Temporal names (never renamed: running histories carry them) -----------------------------

AGENT_RUN_WORKFLOW: Final = "AgentRunWorkflow"
PROCEED: Final = "proceed"
"""Signal: the conversation was handed to this queued run."""
APPROVE: Final = "approve"
"""Update: a human's decision on a tool call (refused by its validator unless it is awaited)."""
STATE: Final = "state"
"""Query: the run's RunState."""

CLAIM_RUN: Final = "claim_run"
CALL_MODEL: Final = "call_model"
EXECUTE_TOOL: Final = "execute_tool"
SET_STATUS: Final = "set_status"
FINISH_RUN: Final = "finish_run"

ALERT_SWEEP_WORKFLOW: Final = "AlertSweepWorkflow"
SWEEP_ALERT_RULES: Final = "sweep_alert_rules"


def workflow_id(run_id: str) -> str:
    """The run's AgentRunWorkflow (one per run)."""
    return f"run-{run_id}"


def sweep_schedule_id(task_queue: str) -> str:
    return "deeployd-alert-sweep" + ("" if task_queue == "deeployd" else f"-{task_queue}")


# --- streams and event types ------------------------------------------------------------------


def run_stream(run_id: str) -> str:
    """A run's chat stream: TOKEN ... then DONE or ERROR."""
    return f"run:{run_id}"


def org_stream(org_id: str) -> str:
    """An organisation's Command Center stream."""
    return f"org:{org_id}"


# Chat-level events on `run:<runId>`.
TOKEN = "token"
TOOL_CALL = "tool_call"
TOOL_RESULT = "tool_result"
APPROVAL_REQUIRED = "approval_required"
DONE = "done"
ERROR = "error"
RUN_END_TYPES = frozenset({DONE, ERROR})

# Command Center events on `org:<orgId>`.
RUN_STARTED = "run:started"
RUN_STATUS_CHANGED = "run:status_changed"
RUN_PROGRESS = "run:progress"
RUN_TOOL_STARTED = "run:tool_started"
RUN_TOOL_COMPLETED = "run:tool_completed"
RUN_LLM_CALL = "run:llm_call"
RUN_MEMORY_OP = "run:memory_op"
RUN_ERROR = "run:error"
RUN_COMPLETED = "run:completed"
ALERT_TRIGGERED = "alert:triggered"
ALERT_RESOLVED = "alert:resolved"
COMMAND_CENTER_TYPES = frozenset(
    {
        RUN_STARTED,
        RUN_STATUS_CHANGED,
        RUN_PROGRESS,
        RUN_TOOL_STARTED,
        RUN_TOOL_COMPLETED,
        RUN_LLM_CALL,
        RUN_MEMORY_OP,
        RUN_ERROR,
        RUN_COMPLETED,
        ALERT_TRIGGERED,
        ALERT_RESOLVED,
    }
)


class EventPayload(BaseModel):
    """A typed event payload; `data()` is the JSON object the stream carries (camelCase)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def data(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class RunStatusChanged(EventPayload):
    """`run:status_changed`; `toolCallId`/`tool` only when the run waits for an approval."""

    status: str
    previous_status: str
    run: dict[str, Any]
    tool_call_id: str | None = None
    tool: str | None = None

    def data(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"run"}) | {
            "run": self.run
        }


class RunFailed(EventPayload):
    """`run:error`."""

    error: dict[str, str | None]
    run: dict[str, Any]

    @classmethod
    def of(cls, message: str | None, code: str | None, run: dict[str, Any]) -> RunFailed:
        return cls(error={"message": message, "code": code}, run=run)


# --- the workflow's inputs and outputs ---------------------------------------------------------

# AgentRunWorkflow sees at most this much of an answer; the whole text is in the messages table
# (a long answer must not bloat the workflow history — finish_run reads it from there).
MAX_INLINE_TEXT = 4000


class ToolCall(BaseModel):
    """One tool invocation the model asked for; `arguments` is already-parsed JSON.

    If a provider streamed arguments that are not a JSON object, `arguments` is
    `{"_raw": "<the text>"}`: the tool layer rejects it with a ToolError that the run feeds
    back to the model (so the model can correct itself instead of the run failing).
    """

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class RunRef(BaseModel):
    run_id: str
    org_id: str
    agent_id: str
    conversation_id: str


class RunPlan(BaseModel):
    claimed: bool
    status: str
    agent_name: str = ""
    approval_required: list[str] = Field(default_factory=list)
    approval_timeout_ms: int | None = None


class AgentRunInput(BaseModel):
    run: RunRef
    # The API claims an idle conversation itself when it creates the run (saving an activity
    # round trip before the first token); a run that has to wait its turn claims it here.
    plan: RunPlan | None = None


class RunOutcome(BaseModel):
    status: str
    text: str | None = None


class ApprovalInput(BaseModel):
    tool_call_id: str
    approved: bool
    comment: str | None = None


class ApprovalAccepted(BaseModel):
    tool_call_id: str
    approved: bool


class RunState(BaseModel):
    status: str
    pending_approvals: list[dict[str, Any]]
    turn: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


# --- the activities' inputs and outputs --------------------------------------------------------


class ClaimRunInput(BaseModel):
    run: RunRef


class CallModelInput(BaseModel):
    run: RunRef
    turn: int
    totals: UsageTotals  # before this call; the activity writes totals + this call (idempotent)
    # Return at most this much of the text (None: all of it). AgentRunWorkflow sets
    # MAX_INLINE_TEXT and reads the whole answer from the messages table at the end.
    max_inline_text: int | None = None


class ModelTurn(BaseModel):
    text: str  # all of it, or the first `max_inline_text` characters
    text_chars: int = 0  # the whole text's length
    # What the stream put before this turn's first token to set it apart from the run's earlier
    # text ("" for the first turn, or when there was whitespace at the seam already).
    separator: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    prompt_tokens: int
    completion_tokens: int
    cost: float


ToolDecision = Literal["auto", "approved", "rejected", "failed"]


class ExecuteToolInput(BaseModel):
    run: RunRef
    call: ToolCall
    decision: ToolDecision = "auto"
    comment: str | None = None


class ToolOutcome(BaseModel):
    tool_call_id: str
    ok: bool


class SetStatusInput(BaseModel):
    run: RunRef
    status: str
    approval_for: ToolCall | None = None  # moving to input-required: the call awaiting a human


class FinishRunInput(BaseModel):
    run: RunRef
    status: RunEndStatus
    text: str | None = None
    final_turn: int | None = None  # the answer is that turn's stored assistant message
    error: str | None = None
    error_code: str | None = None


class FinishResult(BaseModel):
    next_run_id: str | None = None


class SweepAlertsInput(BaseModel):
    pass


class UsageTotals(BaseModel):
    """A run's model usage so far (what the workflow's query reports)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
