"""One A2A task: the agent's run from `submitted` to `completed | failed | canceled | rejected`,
pausing in `input-required` whenever the agent needs a person.

Id `a2a-task-<taskId>`; search attributes DeeploydOrgId / DeeploydAgentId / DeeploydContextId
and DeeploydStatus (the task's A2A state, kept current); memo `agentId`, `contextId`.

The agent runs through the agent-run activities (claim, model calls, tools, finish) — the same
rows, Command Center events and `run:<runId>` token stream as a chat run — while this workflow
owns the A2A side: the task's state, its question when it needs input, and its artifacts, which
the activities stream as chunks on `task:<taskId>`. Follow-up messages arrive as the
`follow_up` update (validated, so a message for a task that is not waiting is refused before it
reaches history). History stays bounded: at most MAX_TOOL_ROUNDS model calls per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from deeployd import temporal as sa
    from deeployd.a2a import contract
    from deeployd.a2a.contract import (
        A2ATaskInput,
        BeginTaskInput,
        FollowUpAccepted,
        FollowUpInput,
        ModelTurnInput,
        PushInput,
        SetStateInput,
        StateResult,
        TaskOutcome,
        TaskPlan,
        TaskRef,
        TaskSnapshot,
        ToolCallInput,
        run_status_for,
    )
    from deeployd.a2a.store import message_data, message_text
    from deeployd.a2a.tools import ASK_USER
    from deeployd.agents import contract as runs
    from workflows import agent_loop as loop


CLAIM_RETRY = timedelta(seconds=2)
_REJECT = re.compile(r"^\s*(no|nope|reject|rejected|deny|denied|don't|do not|cancel)\b", re.I)

# Push receivers may be down for a while; a task does not wait for them forever.
_PUSH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
)


@workflow.defn(name=contract.A2A_TASK_WORKFLOW)
class A2ATaskWorkflow:
    def __init__(self) -> None:
        self._state = "submitted"
        self._inbox: list[dict[str, Any]] = []
        self._question: str | None = None
        self._pending: runs.ToolCall | None = None
        self._loop = loop.AgentLoop()
        self._answer = ""
        self._answer_started = False
        self._push_cursor = 0
        self._has_push = False
        self._ref: TaskRef | None = None
        self._cancel_requested = False
        self._inflight: asyncio.Future[Any] | None = None

    # --- messages from outside ------------------------------------------------------------

    @workflow.update(name=contract.FOLLOW_UP)
    def follow_up(self, request: FollowUpInput) -> FollowUpAccepted:
        self._inbox.append(request.message)
        return FollowUpAccepted(task_id=self._ref.task_id if self._ref else "", state="working")

    @follow_up.validator
    def _validate_follow_up(self, request: FollowUpInput) -> None:
        if self._state != "input-required" or self._inbox:
            raise ValueError(f"the task is not waiting for input (state {self._state})")

    @workflow.signal(name=contract.CANCEL_REQUESTED)
    def cancel_requested(self) -> None:
        """Sent with every cancel: a model call that completes at the very moment the
        cancellation arrives returns its result (Temporal then drops the cancellation), so the
        loop also checks this flag between steps."""
        self._cancel_requested = True

    @workflow.query(name=contract.STATE)
    def state(self) -> TaskSnapshot:
        return TaskSnapshot(
            state=self._state,
            question=self._question,
            turn=self._loop.turn,
            pending_tool=self._pending.name if self._pending else None,
        )

    # --- the task ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: A2ATaskInput) -> TaskOutcome:
        ref = self._ref = request.task
        run: runs.RunRef | None = None
        try:
            plan = await self._activity(
                contract.BEGIN_TASK, BeginTaskInput(task=ref), TaskPlan, timeout_s=60
            )
            if plan.rejected or plan.run is None:
                await self._set_state("rejected", agent_text=plan.reason)
                return TaskOutcome(state="rejected", text=plan.reason)
            run = plan.run
            self._has_push = plan.has_push
            self._state = "working"
            self._upsert_status("working")
            if not plan.claimed:
                await self._claim(run)
            await self._push()
            text = await self._run_loop(run, plan)
        except BaseException as exc:
            if is_cancelled_exception(exc):
                interrupted = await self._finish_inflight()
                if run is None and isinstance(interrupted, TaskPlan):
                    run = interrupted.run  # canceled while the run was being set up
                await self._end(run, "canceled", error="the task was canceled")
                raise
            message, code = loop.describe_failure(exc)
            await self._end(run, "failed", error=message, code=code)
            raise ApplicationError(message, type=code, non_retryable=True) from None
        await self._end(run, "completed", text=text)
        return TaskOutcome(state="completed", text=text)

    async def _claim(self, run: runs.RunRef) -> None:
        # A context's conversation may still be busy with another task's run: wait our turn.
        while True:
            claimed = await self._activity(
                runs.CLAIM_RUN, runs.ClaimRunInput(run=run), runs.RunPlan, timeout_s=30
            )
            if claimed.claimed:
                return
            if claimed.status in runs.TERMINAL:
                raise ApplicationError("the run ended before it started", type="run_ended")
            await workflow.sleep(CLAIM_RETRY)

    async def _run_loop(self, run: runs.RunRef, plan: TaskPlan) -> str:
        ref = self._ref
        assert ref is not None

        async def call_model(turn: int, totals: runs.UsageTotals) -> runs.ModelTurn:
            return await loop.model_activity(
                contract.MODEL_TURN,
                ModelTurnInput(
                    task=ref,
                    call=runs.CallModelInput(run=run, turn=turn, totals=totals),
                    artifact_id=self._artifact_id(),
                    answer_started=self._answer_started,
                ),
            )

        def after_model(result: runs.ModelTurn) -> None:
            if result.text:
                # The separator is what the answer artifact's chunks already carry (from the
                # run's tokens); histories recorded before it existed read "" here.
                self._answer += result.separator + result.text
                self._answer_started = True
            self._check_cancel()

        async def run_tool(call: runs.ToolCall) -> None:
            await self._run_tool(run, plan, call)

        await self._loop.run(
            call_model, run_tool, after_model=after_model, after_tool=lambda _: self._check_cancel()
        )
        return self._answer

    async def _run_tool(self, run: runs.RunRef, plan: TaskPlan, call: runs.ToolCall) -> None:
        assert self._ref is not None
        decision: Literal["auto", "approved", "rejected"] = "auto"
        comment: str | None = None
        if call.name == ASK_USER or call.name in plan.approval_required:
            answer = await self._ask(run, call)
            if call.name != ASK_USER:
                data = message_data(answer)
                text = message_text(answer)
                approved = data.get("approved")
                if not isinstance(approved, bool):
                    approved = not _REJECT.match(text)
                decision = "approved" if approved else "rejected"
                comment = text or None
            else:
                decision = "approved"
        # Up to 6 minutes: `call_agent` waits up to 5 for the remote agent.
        await loop.tool_or_failure(
            workflow.execute_activity(
                contract.TOOL_CALL,
                ToolCallInput(
                    task=self._ref,
                    call=runs.ExecuteToolInput(
                        run=run, call=call, decision=decision, comment=comment
                    ),
                ),
                start_to_close_timeout=timedelta(minutes=6),
                retry_policy=loop.TOOL_RETRY,
            ),
            lambda message: self._activity(
                runs.EXECUTE_TOOL,
                runs.ExecuteToolInput(run=run, call=call, decision="failed", comment=message),
                None,
                timeout_s=30,
            ),
        )

    async def _ask(self, run: runs.RunRef, call: runs.ToolCall) -> dict[str, Any]:
        """input-required until a follow-up message arrives; returns that message."""
        if call.name == ASK_USER:
            question = str(call.arguments.get("question") or "The agent needs your input.")
        else:
            question = (
                f"The agent wants to call {call.name} with {call.arguments}. "
                "Reply 'yes' to approve or 'no' to reject (or send a data part "
                '{"approved": true|false}).'
            )
        self._question, self._pending = question, call
        await self._set_state(
            "input-required",
            agent_text=question,
            run_status=runs.SetStatusInput(run=run, status="input-required", approval_for=call),
        )
        await self._push()
        await workflow.wait_condition(lambda: bool(self._inbox))
        answer = self._inbox.pop(0)
        self._question, self._pending = None, None
        # The caller hears "working" before the run's own bookkeeping.
        await self._set_state(
            "working",
            user_message=answer,
            run_status=runs.SetStatusInput(run=run, status="running"),
        )
        await self._push()
        return answer

    # --- bookkeeping --------------------------------------------------------------------------

    def _check_cancel(self) -> None:
        if self._cancel_requested:
            raise asyncio.CancelledError("the task was canceled")

    def _artifact_id(self) -> str:
        assert self._ref is not None
        return contract.answer_artifact_id(self._ref.task_id)

    async def _set_state(
        self,
        state: str,
        *,
        agent_text: str | None = None,
        user_message: dict[str, Any] | None = None,
        error: str | None = None,
        answer: str | None = None,
        run_status: runs.SetStatusInput | None = None,
        finish_run: runs.FinishRunInput | None = None,
    ) -> None:
        assert self._ref is not None
        self._state = state
        self._upsert_status(state)
        result: StateResult = await self._activity(
            contract.SET_STATE,
            SetStateInput(
                task=self._ref,
                state=state,
                agent_text=agent_text,
                user_message=user_message,
                error=error,
                answer=answer,
                artifact_id=self._artifact_id() if answer is not None else None,
                run_status=run_status,
                finish_run=finish_run,
            ),
            StateResult,
            timeout_s=30,
        )
        self._has_push = self._has_push or result.has_push

    async def _push(self) -> None:
        """Deliver the task's new events to its push-notification configs, if it has any."""
        if not self._has_push or self._ref is None:
            return
        try:
            self._push_cursor = await workflow.execute_activity(
                contract.PUSH_NOTIFY,
                PushInput(task=self._ref, after=self._push_cursor),
                result_type=int,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_PUSH_RETRY,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            workflow.logger.warning("push notifications undeliverable: %s", exc)

    async def _end(
        self,
        run: runs.RunRef | None,
        state: str,
        *,
        text: str | None = None,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        finish = None
        if run is not None:
            finish = runs.FinishRunInput(
                run=run, status=run_status_for(state), text=text, error=error, error_code=code
            )
        answer = text if state == "completed" and self._answer_started else None
        await self._set_state(
            state,
            agent_text=error if state != "completed" else None,
            error=error,
            answer=answer,
            finish_run=finish,
        )
        await self._push()

    def _upsert_status(self, state: str) -> None:
        workflow.upsert_search_attributes([sa.STATUS.value_set(state)])

    async def _activity(
        self, name: str, arg: Any, result_type: type | None, *, timeout_s: float
    ) -> Any:
        # Bookkeeping is shielded from cancellation: a cancel interrupts the workflow's wait,
        # not the activity, and `_finish_inflight` lets it complete before the final state is
        # written — so a stale `input-required` can never land after `canceled`.
        inflight = asyncio.ensure_future(
            loop.bookkeeping_activity(name, arg, result_type=result_type, timeout_s=timeout_s)
        )
        self._inflight = inflight
        return await asyncio.shield(inflight)

    async def _finish_inflight(self) -> Any:
        """Wait for the bookkeeping activity a cancel interrupted; returns its result."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return None
        with contextlib.suppress(BaseException):
            return await inflight
        return None
