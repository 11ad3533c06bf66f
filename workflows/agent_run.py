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
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from deeployd import temporal as sa
    from deeployd.agents import contract
    from deeployd.agents.contract import (
        MAX_INLINE_TEXT,
        AgentRunInput,
        ApprovalAccepted,
        ApprovalInput,
        CallModelInput,
        ClaimRunInput,
        ExecuteToolInput,
        FinishRunInput,
        ModelTurn,
        RunEndStatus,
        RunOutcome,
        RunPlan,
        RunRef,
        RunState,
        SetStatusInput,
        ToolCall,
        UsageTotals,
    )
    from workflows import agent_loop as loop


# Not sandboxed: the sandbox re-imports modules for every new run, which cost 40-80 ms of the
# first workflow task — most of the time to first token. This workflow only calls workflow APIs
# and activities (no I/O, clocks or randomness), so it needs no sandbox to stay deterministic.
@workflow.defn(name=contract.AGENT_RUN_WORKFLOW, sandboxed=False)
class AgentRunWorkflow:
    def __init__(self) -> None:
        self._status = "queued"
        self._proceed = False
        self._pending: dict[str, ToolCall] = {}
        self._decisions: dict[str, ApprovalInput] = {}
        self._loop = loop.AgentLoop()

    # --- messages from outside ------------------------------------------------------------

    @workflow.signal(name=contract.PROCEED)
    def proceed(self) -> None:
        """The conversation was handed to this (queued) run."""
        self._proceed = True

    @workflow.update(name=contract.APPROVE)
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

    @workflow.query(name=contract.STATE)
    def state(self) -> RunState:
        totals = self._loop.totals
        return RunState(
            status=self._status,
            pending_approvals=[
                {"toolCallId": c.id, "name": c.name, "arguments": c.arguments}
                for c in self._pending.values()
            ],
            turn=self._loop.turn,
            prompt_tokens=totals.prompt_tokens,
            completion_tokens=totals.completion_tokens,
            cost=totals.cost,
        )

    # --- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: AgentRunInput) -> RunOutcome:
        ref = request.run
        try:
            plan = request.plan if request.plan is not None else await self._claim(ref)
            while not plan.claimed:
                if plan.status in contract.TERMINAL:
                    return RunOutcome(status=plan.status)
                await workflow.wait_condition(lambda: self._proceed)
                self._proceed = False
                plan = await self._claim(ref)
            self._set_status("running")
            final_turn, preview = await self._run_loop(ref, plan)
        except BaseException as exc:
            message, code = loop.describe_failure(exc)
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

    async def _run_loop(self, ref: RunRef, plan: RunPlan) -> tuple[int, str]:
        """Model calls and tool rounds; returns the final turn and a preview of its text."""

        async def call_model(turn: int, totals: UsageTotals) -> ModelTurn:
            return await loop.model_activity(
                contract.CALL_MODEL,
                CallModelInput(run=ref, turn=turn, totals=totals, max_inline_text=MAX_INLINE_TEXT),
            )

        async def run_tool(call: ToolCall) -> None:
            await self._run_tool(ref, plan, call)

        final_turn, result = await self._loop.run(call_model, run_tool)
        return final_turn, result.text

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
        await loop.tool_or_failure(
            workflow.execute_activity(
                contract.EXECUTE_TOOL,
                ExecuteToolInput(run=ref, call=call, decision=decision, comment=comment),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=loop.TOOL_RETRY,
            ),
            lambda message: loop.bookkeeping_activity(
                contract.EXECUTE_TOOL,
                ExecuteToolInput(run=ref, call=call, decision="failed", comment=message),
            ),
        )

    # --- bookkeeping --------------------------------------------------------------------------

    async def _claim(self, ref: RunRef) -> RunPlan:
        plan: RunPlan = await loop.bookkeeping_activity(
            contract.CLAIM_RUN, ClaimRunInput(run=ref), result_type=RunPlan
        )
        return plan

    async def _status_activity(
        self, ref: RunRef, status: str, approval_for: ToolCall | None = None
    ) -> None:
        await loop.bookkeeping_activity(
            contract.SET_STATUS, SetStatusInput(run=ref, status=status, approval_for=approval_for)
        )

    async def _finish(
        self,
        ref: RunRef,
        status: RunEndStatus,
        *,
        final_turn: int | None = None,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        await loop.bookkeeping_activity(
            contract.FINISH_RUN,
            FinishRunInput(
                run=ref, status=status, final_turn=final_turn, error=error, error_code=code
            ),
            timeout_s=60,
        )
        # Only now: a query never reports an end the run's row (and stream) do not show yet.
        self._set_status(status)

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            workflow.upsert_search_attributes([sa.STATUS.value_set(status)])
