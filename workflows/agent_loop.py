"""The agent loop both agent workflows run: call the model, run the tools it asks for, call it
again with the results — at most MAX_TOOL_ROUNDS times.

`AgentRunWorkflow` (a chat run) and `A2ATaskWorkflow` (an A2A task) differ only in how one model
turn and one tool call are executed (which activity, what happens around it); the limit, the
timeouts, the retry policies, the usage totals and how a failure is described live here once.
Only workflow APIs are used, so the module is safe in the workflow sandbox and outside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from deeployd.agents.contract import ModelTurn, ToolCall, UsageTotals

# Model calls that may request tools before the run gives up (the model gets one more call
# after the last tool round to answer).
MAX_TOOL_ROUNDS = 10
# The model activity heartbeats twice a second; a lost worker is noticed after this long. (Not
# shorter: a starved event loop must not look dead. Cancellation does not wait for heartbeats —
# see deeployd.agents.cancellation.)
MODEL_HEARTBEAT_TIMEOUT = timedelta(seconds=5)

MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=4,
)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)
# Bookkeeping writes ride out a database outage of about ten minutes; past that the run ends
# with the error instead of retrying forever.
BOOKKEEPING_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=125,
)


async def model_activity(name: str, arg: Any) -> ModelTurn:
    """One model call: long, heartbeating, and cancelled cooperatively (the activity closes the
    provider's stream and makes its tokens durable before the workflow moves on)."""
    return await workflow.execute_activity(
        name,
        arg,
        result_type=ModelTurn,
        start_to_close_timeout=timedelta(minutes=10),
        heartbeat_timeout=MODEL_HEARTBEAT_TIMEOUT,
        retry_policy=MODEL_RETRY,
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    )


async def bookkeeping_activity(
    name: str, arg: Any, *, result_type: type | None = None, timeout_s: float = 30
) -> Any:
    """A short database write (claim, status, finish): retried until it lands."""
    return await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=timedelta(seconds=timeout_s),
        retry_policy=BOOKKEEPING_RETRY,
    )


def add_usage(totals: UsageTotals, turn: ModelTurn) -> UsageTotals:
    return UsageTotals(
        prompt_tokens=totals.prompt_tokens + turn.prompt_tokens,
        completion_tokens=totals.completion_tokens + turn.completion_tokens,
        cost=round(totals.cost + turn.cost, 8),
    )


def _nothing(*_: Any) -> None:
    return None


class AgentLoop:
    """Model turns and tool rounds; `turn` and `totals` are what the workflow's query reports."""

    def __init__(self) -> None:
        self.turn = 0
        self.totals = UsageTotals()

    async def run(
        self,
        call_model: Callable[[int, UsageTotals], Awaitable[ModelTurn]],
        run_tool: Callable[[ToolCall], Awaitable[None]],
        *,
        after_model: Callable[[ModelTurn], None] = _nothing,
        after_tool: Callable[[ToolCall], None] = _nothing,
    ) -> tuple[int, ModelTurn]:
        """Until the model answers without tools; returns that turn and its result.

        `call_model(turn, totals_before)` runs one model turn, `run_tool(call)` one tool call;
        `after_model` / `after_tool` run after each (e.g. to honour a cancel request)."""
        for turn in range(MAX_TOOL_ROUNDS + 1):
            self.turn = turn
            result = await call_model(turn, self.totals)
            self.totals = add_usage(self.totals, result)
            after_model(result)
            if not result.tool_calls:
                return turn, result
            if turn == MAX_TOOL_ROUNDS:
                break
            for call in result.tool_calls:
                await run_tool(call)
                after_tool(call)
        raise ApplicationError(
            f"the model kept calling tools after {MAX_TOOL_ROUNDS} rounds",
            type="max_iterations",
            non_retryable=True,
        )


async def tool_or_failure(
    attempt: Awaitable[Any], record_failure: Callable[[str], Awaitable[Any]]
) -> None:
    """Run a tool activity; when it kept failing, record why (the model is told, and decides
    what to do next). A cancellation goes through."""
    try:
        await attempt
    except ActivityError as exc:
        if is_cancelled_exception(exc):
            raise
        message, _ = describe_failure(exc)
        await record_failure(message)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(message, code) of a failure, digging through Temporal's wrappers."""
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type or "error"
    if isinstance(exc, asyncio.TimeoutError):
        return "the run timed out", "timeout"
    return str(cause or exc) or type(exc).__name__, "error"
