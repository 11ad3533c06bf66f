"""One agent run: a user message in, the agent's answer out, with tools and human approvals.

Id `run-<runId>`; search attributes DeeploydOrgId / DeeploydAgentId / DeeploydConversationId and
DeeploydStatus (kept current) so runs can be filtered in the Temporal UI; memo `agentName`.

The loop: call the model (tokens stream to the event log inside the activity; the workflow gets
only the final message — up to 4,000 characters of it; the whole answer stays in the messages
table — the tool calls and usage), run each requested tool (waiting for a human when the tool is
in the agent's `approvalRequired`), and call the model again with the results — at most
MAX_TOOL_ROUNDS times. A run's history therefore stays small (tens of events of bounded size),
so continue-as-new is never needed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.agent_runs import (
        MAX_INLINE_TEXT,
        AgentRunActivities,
        CallModelInput,
        ClaimRunInput,
        ExecuteToolInput,
        FinishRunInput,
        RunPlan,
        RunRef,
        SetStatusInput,
        UsageTotals,
    )
    from deeployd import temporal as sa
    from deeployd.agents.providers import ToolCall

# Model calls that may request tools before the run gives up (the model gets one more call
# after the last tool round to answer).
MAX_TOOL_ROUNDS = 10
# The model activity heartbeats twice a second; a lost worker is noticed after this long. (Not
# shorter: a starved event loop must not look dead. Cancellation does not wait for heartbeats —
# see deeployd.agents.cancellation.)
MODEL_HEARTBEAT_TIMEOUT = timedelta(seconds=5)

_MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=4,
)
_TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)
_BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)
)


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


# Not sandboxed: the sandbox re-imports modules for every new run, which cost 40-80 ms of the
# first workflow task — most of the time to first token. This workflow only calls workflow APIs
# and activities (no I/O, clocks or randomness), so it needs no sandbox to stay deterministic.
@workflow.defn(sandboxed=False)
class AgentRunWorkflow:
    def __init__(self) -> None:
        self._status = "queued"
        self._proceed = False
        self._pending: dict[str, ToolCall] = {}
        self._decisions: dict[str, ApprovalInput] = {}
        self._totals = UsageTotals()
        self._turn = 0

    # --- messages from outside ------------------------------------------------------------

    @workflow.signal
    def proceed(self) -> None:
        """The conversation was handed to this (queued) run."""
        self._proceed = True

    @workflow.update
    def approve(self, decision: ApprovalInput) -> ApprovalAccepted:
        self._decisions[decision.tool_call_id] = decision
        return ApprovalAccepted(tool_call_id=decision.tool_call_id, approved=decision.approved)

    @approve.validator
    def _validate_approval(self, decision: ApprovalInput) -> None:
        # Rejected updates never reach history: a stale or unknown decision costs nothing.
        if self._status != "input-required":
            raise ValueError(f"the run is not waiting for approval (status {self._status})")
        if decision.tool_call_id not in self._pending:
            raise ValueError(f"no tool call {decision.tool_call_id!r} is awaiting approval")
        if decision.tool_call_id in self._decisions:
            raise ValueError(f"tool call {decision.tool_call_id!r} was already decided")

    @workflow.query
    def state(self) -> RunState:
        return RunState(
            status=self._status,
            pending_approvals=[
                {"toolCallId": c.id, "name": c.name, "arguments": c.arguments}
                for c in self._pending.values()
            ],
            turn=self._turn,
            prompt_tokens=self._totals.prompt_tokens,
            completion_tokens=self._totals.completion_tokens,
            cost=self._totals.cost,
        )

    # --- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: AgentRunInput) -> RunOutcome:
        ref = request.run
        try:
            plan = request.plan if request.plan is not None else await self._claim(ref)
            while not plan.claimed:
                if plan.status in ("completed", "failed", "cancelled"):
                    return RunOutcome(status=plan.status)
                await workflow.wait_condition(lambda: self._proceed)
                self._proceed = False
                plan = await self._claim(ref)
            self._set_status("running")
            final_turn, preview = await self._loop(ref, plan)
        except BaseException as exc:
            message, code = _describe(exc)
            if is_cancelled_exception(exc) or code == "cancelled":
                # `cancelled` from the model activity: it saw the API's cancel notice (sent after
                # the workflow cancellation was requested) and closed the stream at once.
                await self._finish(
                    ref, "cancelled", error="the run was cancelled", code="cancelled"
                )
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise asyncio.CancelledError("the run was cancelled") from None
            await self._finish(ref, "failed", error=message, code=code)
            raise ApplicationError(message, type=code, non_retryable=True) from None
        await self._finish(ref, "completed", final_turn=final_turn)
        return RunOutcome(status="completed", text=preview)

    async def _loop(self, ref: RunRef, plan: RunPlan) -> tuple[int, str]:
        """Model calls and tool rounds; returns the final turn and a preview of its text."""
        for turn in range(MAX_TOOL_ROUNDS + 1):
            self._turn = turn
            result = await workflow.execute_activity_method(
                AgentRunActivities.call_model,
                CallModelInput(
                    run=ref, turn=turn, totals=self._totals, max_inline_text=MAX_INLINE_TEXT
                ),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=MODEL_HEARTBEAT_TIMEOUT,
                retry_policy=_MODEL_RETRY,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            self._totals = UsageTotals(
                prompt_tokens=self._totals.prompt_tokens + result.prompt_tokens,
                completion_tokens=self._totals.completion_tokens + result.completion_tokens,
                cost=round(self._totals.cost + result.cost, 8),
            )
            if not result.tool_calls:
                return turn, result.text
            if turn == MAX_TOOL_ROUNDS:
                break
            for call in result.tool_calls:
                await self._run_tool(ref, plan, call)
        raise ApplicationError(
            f"the model kept calling tools after {MAX_TOOL_ROUNDS} rounds",
            type="max_iterations",
            non_retryable=True,
        )

    async def _run_tool(self, ref: RunRef, plan: RunPlan, call: ToolCall) -> None:
        decision: Literal["auto", "approved", "rejected"] = "auto"
        comment: str | None = None
        if call.name in plan.approval_required:
            self._pending[call.id] = call
            self._set_status("input-required")
            await self._status_activity(ref, "input-required", approval_for=call)
            timeout = (
                timedelta(milliseconds=plan.approval_timeout_ms)
                if plan.approval_timeout_ms
                else None
            )
            try:
                await workflow.wait_condition(lambda: call.id in self._decisions, timeout=timeout)
                answer = self._decisions[call.id]
                decision = "approved" if answer.approved else "rejected"
                comment = answer.comment
            except TimeoutError:
                decision, comment = "rejected", "no decision before the approval timeout"
            finally:
                self._pending.pop(call.id, None)
            self._set_status("running")
            await self._status_activity(ref, "running")
        try:
            await workflow.execute_activity_method(
                AgentRunActivities.execute_tool,
                ExecuteToolInput(run=ref, call=call, decision=decision, comment=comment),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_TOOL_RETRY,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            # The tool kept failing: the model is told, and decides what to do next.
            message, _ = _describe(exc)
            await workflow.execute_activity_method(
                AgentRunActivities.execute_tool,
                ExecuteToolInput(run=ref, call=call, decision="failed", comment=message),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_BOOKKEEPING_RETRY,
            )

    # --- bookkeeping --------------------------------------------------------------------------

    async def _claim(self, ref: RunRef) -> RunPlan:
        return await workflow.execute_activity_method(
            AgentRunActivities.claim_run,
            ClaimRunInput(run=ref),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING_RETRY,
        )

    async def _status_activity(
        self, ref: RunRef, status: str, approval_for: ToolCall | None = None
    ) -> None:
        await workflow.execute_activity_method(
            AgentRunActivities.set_status,
            SetStatusInput(run=ref, status=status, approval_for=approval_for),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING_RETRY,
        )

    async def _finish(
        self,
        ref: RunRef,
        status: Literal["completed", "failed", "cancelled"],
        *,
        final_turn: int | None = None,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        await workflow.execute_activity_method(
            AgentRunActivities.finish_run,
            FinishRunInput(
                run=ref, status=status, final_turn=final_turn, error=error, error_code=code
            ),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_BOOKKEEPING_RETRY,
        )
        # Only now: a query never reports an end the run's row (and stream) do not show yet.
        self._set_status(status)

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            workflow.upsert_search_attributes([sa.STATUS.value_set(status)])


def _describe(exc: BaseException) -> tuple[str, str]:
    """(message, code) of a failure, digging through Temporal's wrappers."""
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type or "error"
    if isinstance(exc, asyncio.TimeoutError):
        return "the run timed out", "timeout"
    return str(cause or exc) or type(exc).__name__, "error"
