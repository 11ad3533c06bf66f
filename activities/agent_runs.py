"""Activities of an agent run: claim the conversation, call the model (streaming tokens into the
event log), run tools, move the status, finish.

The workflow only ever sees small results (the final text, tool calls, usage); tokens go from the
provider straight to the event log through the coalescing publisher.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from deeployd.agents import contract, providers, store
from deeployd.agents import events as ev
from deeployd.agents.alerts import evaluate_org_rules, orgs_with_windowed_rules
from deeployd.agents.cancellation import CancelWatcher
from deeployd.agents.pricing import Pricing, cost_usd
from deeployd.agents.providers.base import estimate_tokens
from deeployd.agents.turns import turn_separator
from deeployd.netguard import UnsafeURLError, check_outbound_url
from deeployd.secretstore import MissingSecretError, SecretStore
from deeployd.services import Services

log = logging.getLogger(__name__)


# `run:progress` goes out at most this often per run (the Command Center is a dashboard, not a
# token stream).
PROGRESS_INTERVAL_S = 0.25
# A model call heartbeats this often from a side task, so a slow first token never looks like
# a dead worker, and cancellation reaches the activity at the next heartbeat response.
HEARTBEAT_INTERVAL_S = 0.5
# After a cancel notice, how long the activity waits for Temporal's own cancellation.
CANCEL_GRACE_S = 30.0
# Bounded buffers: at most this many of a run's tokens wait for the event log at once (a slow
# database slows the stream down instead of piling tokens up in memory) ...
MAX_TOKENS_IN_FLIGHT = 1000
# ... and an answer longer than this is cut off and the run fails (a runaway stream).
MAX_ANSWER_CHARS = 2_000_000


TokenListener = Callable[[str], None]
ResultListener = Callable[[Any], None]


def _non_retryable(message: str, code: str) -> ApplicationError:
    return ApplicationError(message, type=code, non_retryable=True)


class AgentRunActivities:
    """Built once in the worker. Besides the database, the publisher, the settings and the
    Temporal client, it keeps the whole bundle for the two callees that take it: tools (their context)
    and alert evaluation."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._db = services.db
        self._pool = services.db.pool
        self._publisher = services.publisher
        self._settings = services.settings
        self._temporal = services.temporal
        # Read when an agent's key is resolved: a worker without a secret key still runs every
        # agent that names no secret.
        self._secret_box = lambda: services.secret_box
        self._cancels = CancelWatcher(services.db.url)

    def _events(self, ref: contract.RunRef) -> ev.RunEvents:
        return ev.RunEvents(self._publisher, ref.org_id, ref.run_id, ref.agent_id)

    async def _agent(self, ref: contract.RunRef) -> dict[str, Any]:
        agent = await store.get_agent(self._pool, ref.org_id, ref.agent_id)
        if agent is None:
            raise _non_retryable("the agent was deleted", "agent_not_found")
        return agent

    async def _run_row(self, ref: contract.RunRef) -> dict[str, Any]:
        row = await store.get_run(self._pool, ref.org_id, ref.run_id)
        if row is None:
            raise _non_retryable("the run row is gone", "run_not_found")
        return row

    async def _add_message(
        self,
        ref: contract.RunRef,
        step: str,
        *,
        role: str,
        content: str,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
    ) -> None:
        """Store one message of the run, once: `step` names it within the run (a retry of the
        same step finds it stored)."""
        await store.insert_message(
            self._pool,
            org_id=ref.org_id,
            conversation_id=ref.conversation_id,
            run_id=ref.run_id,
            dedup_key=f"{ref.run_id}:{step}",
            role=role,
            content=content,
            tool_calls=tool_calls,
            tool_call_id=tool_call_id,
        )

    async def _record_tool_call(
        self, ref: contract.RunRef, call: contract.ToolCall, status: str, **details: Any
    ) -> None:
        """Add (or update) the call in the run's `toolCalls` list."""
        entry = {"toolCallId": call.id, "name": call.name, "arguments": call.arguments}
        await store.append_tool_call(
            self._pool, ref.org_id, ref.run_id, {**entry, "status": status, **details}
        )

    # --- lifecycle ----------------------------------------------------------------------------

    @activity.defn(name=contract.CLAIM_RUN)
    async def claim_run(self, request: contract.ClaimRunInput) -> contract.RunPlan:
        """Take the conversation if it is free (else the run stays queued) and start running."""
        ref = request.run
        agent = await self._agent(ref)
        claimed, status = await store.claim_conversation(
            self._pool, ref.org_id, ref.conversation_id, ref.run_id
        )
        plan = contract.RunPlan(
            claimed=claimed,
            status=status,
            agent_name=agent["name"],
            approval_required=list(agent["approval_required"] or []),
            approval_timeout_ms=agent["approval_timeout_ms"],
        )
        if not claimed:
            return plan
        previous = status
        row = await store.update_run(
            self._pool, ref.org_id, ref.run_id, status="running", started_at="coalesce_now()"
        )
        if row is None:
            raise _non_retryable("the run row is gone", "run_not_found")
        if previous == "queued":  # first claim (a retry after a crash finds it running already)
            await ev.announce_claimed(self._events(ref), row)
        plan.status = "running"
        return plan

    @activity.defn(name=contract.SET_STATUS)
    async def set_status(self, request: contract.SetStatusInput) -> None:
        """Move the run's status (running <-> input-required) and tell both streams."""
        ref = request.run
        before = await self._run_row(ref)
        if before["status"] in contract.TERMINAL:
            return  # a late status change (e.g. after a cancel) never reopens an ended run
        row = await store.update_run(self._pool, ref.org_id, ref.run_id, status=request.status)
        if row is None:
            raise _non_retryable("the run row is gone", "run_not_found")
        events = self._events(ref)
        if request.approval_for is not None:
            call = request.approval_for
            events.chat(
                ev.APPROVAL_REQUIRED,
                {
                    "toolCallId": call.id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "runId": ref.run_id,  # where to POST the decision
                },
            )
            await self._record_tool_call(ref, call, "awaiting_approval")
        if before["status"] != request.status:
            approval_for = request.approval_for
            events.command_center(
                ev.RUN_STATUS_CHANGED,
                contract.RunStatusChanged(
                    status=request.status,
                    previous_status=before["status"],
                    run=ev.run_item(row),
                    tool_call_id=approval_for.id if approval_for else None,
                    tool=approval_for.name if approval_for else None,
                ).data(),
            )
        await events.flush()

    @activity.defn(name=contract.FINISH_RUN)
    async def finish_run(self, request: contract.FinishRunInput) -> contract.FinishResult:
        """Record the outcome, end the run's stream, hand the conversation on, evaluate alerts."""
        ref = request.run
        before = await self._run_row(ref)
        events = self._events(ref)
        if before["status"] not in contract.TERMINAL:
            text = request.text
            if request.final_turn is not None:
                text = await store.turn_text(self._pool, ref.org_id, ref.run_id, request.final_turn)
            row = await store.update_run(
                self._pool,
                ref.org_id,
                ref.run_id,
                status=request.status,
                result=text,
                error=request.error,
                error_code=request.error_code,
                completed_at="now()",
            )
            assert row is not None
            await ev.announce_end(
                events, row, before["status"], error=request.error, code=request.error_code
            )
        next_run = await store.release_conversation(
            self._pool, ref.org_id, ref.conversation_id, ref.run_id
        )
        if next_run is not None:
            await self._wake(next_run)
        try:
            await evaluate_org_rules(self._services, ref.org_id, run_id=ref.run_id)
        except Exception:  # alerting must never fail a run
            log.exception("alert evaluation failed for org %s", ref.org_id)
        return contract.FinishResult(next_run_id=next_run)

    async def _wake(self, run_id: str) -> None:
        """Tell a queued run's workflow it holds the conversation now."""
        client = self._temporal
        if client is None:
            return  # its own claim at start-up finds the conversation handed to it
        from temporalio.service import RPCError

        try:
            await client.get_workflow_handle(contract.workflow_id(run_id)).signal(contract.PROCEED)
        except RPCError as exc:  # not started yet: its first claim will succeed
            log.info("could not signal run %s: %s", run_id, exc)

    @activity.defn(name=contract.SWEEP_ALERT_RULES)
    async def sweep_alert_rules(self, request: contract.SweepAlertsInput) -> int:
        """Re-evaluate every organisation's windowed rules; returns how many changed state."""
        changed = 0
        for org_id in await orgs_with_windowed_rules(self._services):
            changed += len(await evaluate_org_rules(self._services, org_id))
        return changed

    # --- the model call -----------------------------------------------------------------------

    @activity.defn(name=contract.CALL_MODEL)
    async def call_model(self, request: contract.CallModelInput) -> contract.ModelTurn:
        """Stream one model call: tokens to the log as they arrive, the summary to the workflow."""
        return await self.stream_model_turn(request)

    async def stream_model_turn(
        self, request: contract.CallModelInput, on_token: TokenListener | None = None
    ) -> contract.ModelTurn:
        """`call_model`'s work; `on_token` also gets each token the run's stream publishes (with
        the turn's separator), e.g. to build an A2A answer artifact."""
        ref = request.run
        agent = await self._agent(ref)
        model_request = await self._model_request(ref, agent)
        try:
            provider = providers.get_provider(agent["provider"])
        except KeyError as exc:
            raise _non_retryable(str(exc.args[0]), "unknown_provider") from None
        pricing = Pricing.model_validate(agent["pricing"]) if agent["pricing"] else None

        def price(prompt: int, completion: int) -> float:
            return cost_usd(agent["model"], prompt, completion, pricing, provider=agent["provider"])

        events = self._events(ref)
        # A retry (worker lost mid-stream) re-plays the call; clients already have the tokens
        # that made it to the log, so those are not published again.
        skip = 0
        if activity.info().attempt > 1:
            skip = await store.count_published_tokens(
                self._pool, ref.org_id, ref.run_id, request.turn
            )
        # Text streamed by an earlier turn of this run: this turn's first token is set apart
        # from it (see deeployd/agents/turns.py); the stored message stays the model's text.
        earlier_text = (
            await store.latest_turn_text_before(self._pool, ref.org_id, ref.run_id, request.turn)
            if request.turn > 0
            else None
        )
        separator = ""
        started = time.monotonic()
        first_token_at: float | None = None
        last_progress = 0.0
        parts: list[str] = []
        calls: list[providers.ToolCall] = []
        usage: providers.UsageReport | None = None
        prompt_estimate = sum(estimate_tokens(m.content or "") for m in model_request.messages)
        totals = request.totals
        in_flight: collections.deque[asyncio.Future[int]] = collections.deque()
        chars = 0
        async with heartbeating(HEARTBEAT_INTERVAL_S):
            try:
                async with (
                    self._cancels.watch(ref.run_id) as cancel_notice,
                    contextlib.aclosing(
                        cast(
                            AsyncGenerator[providers.ProviderEvent, None],
                            provider.stream(model_request),
                        )
                    ) as stream,
                ):
                    async for item in stream:
                        if cancel_notice.is_set():
                            break  # leaving the block closes the provider's stream
                        if isinstance(item, providers.TextDelta):
                            if first_token_at is None:
                                first_token_at = time.monotonic()
                            parts.append(item.text)
                            chars += len(item.text)
                            if chars > MAX_ANSWER_CHARS:
                                raise _non_retryable(
                                    f"the answer exceeded {MAX_ANSWER_CHARS} characters",
                                    "answer_too_long",
                                )
                            token = item.text
                            if earlier_text is not None and token:
                                separator = turn_separator(earlier_text, token)
                                token = separator + token
                                earlier_text = None
                            if skip:
                                skip -= 1
                            else:
                                in_flight.append(
                                    events.chat(ev.TOKEN, {"token": token, "turn": request.turn})
                                )
                                if on_token is not None:
                                    on_token(token)
                                if len(in_flight) > MAX_TOKENS_IN_FLIGHT:
                                    await in_flight.popleft()
                                while in_flight and in_flight[0].done():
                                    in_flight.popleft()
                            now = time.monotonic()
                            if now - last_progress >= PROGRESS_INTERVAL_S:
                                last_progress = now
                                completion = totals.completion_tokens + len(parts)
                                prompt = totals.prompt_tokens + prompt_estimate
                                events.command_center(
                                    ev.RUN_PROGRESS,
                                    {
                                        "tokens": prompt + completion,
                                        "tokenUsage": ev.usage_dict(prompt, completion),
                                        "cost": round(
                                            totals.cost + price(prompt_estimate, len(parts)), 8
                                        ),
                                    },
                                )
                        elif isinstance(item, providers.ToolCallRequest):
                            calls.append(item.call)
                            events.chat(
                                ev.TOOL_CALL,
                                {
                                    "name": item.call.name,
                                    "arguments": item.call.arguments,
                                    "toolCallId": item.call.id,
                                },
                            )
                        elif isinstance(item, providers.UsageReport):
                            usage = item
                if cancel_notice.is_set():
                    await events.flush()
                    # The stream is closed. AgentRunWorkflow (already asked to cancel: the API
                    # cancels before it notifies) treats this error as the cancellation; other
                    # callers wait for Temporal's own cancellation, delivered at the next
                    # heartbeat.
                    if activity.info().workflow_type != contract.AGENT_RUN_WORKFLOW:
                        await asyncio.sleep(CANCEL_GRACE_S)
                    raise _non_retryable("the run was cancelled", "cancelled")
            except providers.ProviderError as exc:
                if exc.retryable:
                    raise ApplicationError(
                        exc.message, type=exc.code, next_retry_delay=_delay(exc.retry_after_s)
                    ) from None
                raise _non_retryable(exc.message, exc.code) from None
            finally:
                # Whatever happened, the tokens already emitted become durable before we return.
                await events.flush()
        latency_ms = int((time.monotonic() - started) * 1000)
        text = "".join(parts)
        prompt_tokens = usage.prompt_tokens if usage else prompt_estimate
        completion_tokens = usage.completion_tokens if usage else estimate_tokens(text)
        cost = price(prompt_tokens, completion_tokens)
        await self._add_message(
            ref,
            f"turn:{request.turn}",
            role="assistant",
            content=text,
            tool_calls=[c.model_dump() for c in calls],
        )
        await store.update_run(
            self._pool,
            ref.org_id,
            ref.run_id,
            prompt_tokens=totals.prompt_tokens + prompt_tokens,
            completion_tokens=totals.completion_tokens + completion_tokens,
            cost=round(totals.cost + cost, 8),
            model_calls=request.turn + 1,
        )
        events.command_center(
            ev.RUN_LLM_CALL,
            {
                "provider": agent["provider"],
                "model": agent["model"],
                "turn": request.turn,
                "latencyMs": latency_ms,
                "timeToFirstTokenMs": (
                    int((first_token_at - started) * 1000) if first_token_at else None
                ),
                "tokens": ev.usage_dict(prompt_tokens, completion_tokens),
                "cost": cost,
                "toolCalls": len(calls),
            },
        )
        await events.flush()
        return contract.ModelTurn(
            text=text if request.max_inline_text is None else text[: request.max_inline_text],
            separator=separator,
            text_chars=len(text),
            tool_calls=[contract.ToolCall.model_validate(c) for c in calls],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
        )

    async def _model_request(
        self, ref: contract.RunRef, agent: dict[str, Any]
    ) -> providers.ModelRequest:
        settings = self._settings
        api_key: str | None = None
        if agent["api_key"]:
            try:
                resolved = await SecretStore(self._db, self._secret_box()).resolve(
                    ref.org_id, agent["api_key"]
                )
            except MissingSecretError as exc:
                raise _non_retryable(str(exc), "missing_secret") from None
            api_key = str(resolved)
        elif providers.has_platform_key(agent["provider"]) and not providers.is_platform_endpoint(
            agent["provider"], agent["base_url"]
        ):
            # Never send the platform's key to a URL a tenant chose (agents stored before
            # this rule was validated on create/update).
            raise _non_retryable(
                "an agent with a custom baseUrl needs its own apiKey (${secrets.NAME})", "auth"
            )
        else:
            api_key = providers.default_api_key(agent["provider"], settings, agent["base_url"])
        if agent["base_url"]:
            try:
                await check_outbound_url(
                    agent["base_url"], allow_private=settings.allow_private_urls
                )
            except UnsafeURLError as exc:
                raise _non_retryable(str(exc), "unsafe_url") from None
        history = await store.load_history(self._pool, ref.org_id, ref.conversation_id, ref.run_id)
        messages: list[providers.ChatMessage] = []
        if agent["system_prompt"]:
            messages.append(providers.ChatMessage(role="system", content=agent["system_prompt"]))
        for row in history:
            messages.append(
                providers.ChatMessage(
                    role=row["role"],
                    content=row["content"],
                    tool_calls=[
                        providers.ToolCall.model_validate(c) for c in row["tool_calls"] or []
                    ],
                    tool_call_id=row["tool_call_id"],
                )
            )
        from deeployd.agents.tools import tool_specs

        try:
            tools = tool_specs(agent["tools"] or [])
        except KeyError as exc:
            raise _non_retryable(str(exc.args[0]), "unknown_tool") from None
        return providers.ModelRequest(
            provider=agent["provider"],
            model=agent["model"],
            messages=messages,
            tools=tools,
            temperature=agent["temperature"],
            max_tokens=agent["max_tokens"],
            base_url=agent["base_url"],
            api_key=api_key,
            options=agent["provider_options"] or {},
        )

    # --- tools --------------------------------------------------------------------------------

    @activity.defn(name=contract.EXECUTE_TOOL)
    async def execute_tool(self, request: contract.ExecuteToolInput) -> contract.ToolOutcome:
        """Run one tool call (or record why it did not run) and store its result message."""
        return await self.run_tool_call(request, on_result=None)

    async def run_tool_call(
        self, request: contract.ExecuteToolInput, *, on_result: ResultListener | None
    ) -> contract.ToolOutcome:
        """`execute_tool`'s work; `on_result` also gets the result the stream shows (an A2A
        task turns it into a data artifact)."""
        from deeployd.agents.tools import ToolContext, ToolError, run_tool

        ref, call = request.run, request.call
        events = self._events(ref)
        started = time.monotonic()
        ok = True
        result: Any
        status = "completed"
        if request.decision == "rejected":
            ok, status = False, "rejected"
            result = {
                "error": "the call was not approved",
                "approved": False,
                "comment": request.comment,
            }
        elif request.decision == "failed":
            ok, status = False, "failed"
            result = {"error": request.comment or "the tool failed"}
        else:
            events.command_center(
                ev.RUN_TOOL_STARTED,
                {"tool": call.name, "toolCallId": call.id, "arguments": call.arguments},
            )

            async def publish(event_type: str, data: dict[str, Any]) -> None:
                await events.command_center(event_type, data)

            ctx = ToolContext(
                org_id=ref.org_id,
                run_id=ref.run_id,
                conversation_id=ref.conversation_id,
                agent_id=ref.agent_id,
                services=self._services,
                publish=publish,
            )
            try:
                result = await run_tool(call.name, call.arguments, ctx)
            except ToolError as exc:  # the model hears about it and may correct itself
                ok, status = False, "error"
                result = {"error": exc.message}
        duration_ms = int((time.monotonic() - started) * 1000)
        content = store.clip_result(result)
        await self._add_message(
            ref, f"tool:{call.id}", role="tool", content=content, tool_call_id=call.id
        )
        await self._record_tool_call(
            ref,
            call,
            status,
            ok=ok,
            durationMs=duration_ms,
            **({"comment": request.comment} if request.comment else {}),
        )
        # The stream carries the result itself when it is small, its bounded text otherwise.
        shown = result if len(content) < store.MAX_TOOL_RESULT_CHARS else content
        events.chat(ev.TOOL_RESULT, {"toolCallId": call.id, "name": call.name, "result": shown})
        if on_result is not None:
            on_result(shown)
        events.command_center(
            ev.RUN_TOOL_COMPLETED,
            {
                "tool": call.name,
                "toolCallId": call.id,
                "ok": ok,
                "status": status,
                "durationMs": duration_ms,
            },
        )
        await events.flush()
        return contract.ToolOutcome(tool_call_id=call.id, ok=ok)


def _delay(seconds: float | None):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(seconds=min(seconds, 60)) if seconds else None
