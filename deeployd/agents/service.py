"""What the API does for agents, conversations and runs (routes stay thin).

Starting a run: the run row and the user's message are committed (under the conversation's row
lock, which also decides the multitask strategy) before the workflow starts, and the workflow
has started before the API answers — an acknowledged message is never lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from deeployd import errors, temporal
from deeployd.agents import contract, store
from deeployd.agents.cancellation import notify_cancel
from deeployd.agents.contract import (
    AgentRunInput,
    ApprovalAccepted,
    ApprovalInput,
    RunOutcome,
    RunPlan,
    RunRef,
    RunState,
)
from deeployd.agents.events import RunEvents, announce_claimed, announce_end
from deeployd.agents.providers import PROVIDERS, has_platform_key, is_platform_endpoint
from deeployd.agents.tools import get_tool
from deeployd.idempotency import IdempotencyKey, forget, remember
from deeployd.ids import new_id
from deeployd.models.agent import RunPublic, TokenUsage
from deeployd.netguard import UnsafeURLError, check_url_syntax
from deeployd.services import Services
from deeployd.settings import Settings

log = logging.getLogger(__name__)

SECRET_REFERENCE = re.compile(r"^\$\{secrets\.[A-Za-z_][A-Za-z0-9_]*\}$")
MAX_PROVIDER_OPTIONS_BYTES = 256 * 1024
ACTIVE = contract.ACTIVE
TERMINAL = contract.TERMINAL
workflow_id = contract.workflow_id


# ---------------------------------------------------------------------------------------------
# Agent validation (semantic checks pydantic cannot do; 422 naming the exact field)
# ---------------------------------------------------------------------------------------------


def validate_agent(fields: dict[str, Any]) -> None:
    """Check provider, tools, approvals, key reference, base URL and provider options."""
    found: list[errors.FieldError] = []

    def bad(loc: tuple[str | int, ...], msg: str) -> None:
        found.append(errors.FieldError(("body", *loc), msg))

    provider = fields.get("provider")
    if provider is not None:
        try:
            PROVIDERS.get(provider, ("provider",))
        except errors.Invalid as exc:
            found.extend(errors.FieldError(("body", *e.loc), e.msg) for e in exc.errors)
    tools = fields.get("tools") or []
    for i, name in enumerate(tools):
        try:
            get_tool(name)
        except KeyError:
            bad(("tools", i), f"unknown tool '{name}'")
    if len(set(tools)) != len(tools):
        bad(("tools",), "tool names must be unique")
    for i, name in enumerate(fields.get("approval_required") or []):
        if name not in tools:
            bad(("approvalRequired", i), f"'{name}' is not one of the agent's tools")
    api_key = fields.get("api_key")
    if api_key is not None and not SECRET_REFERENCE.match(api_key):
        bad(
            ("apiKey",),
            "must be a ${secrets.NAME} reference (store the key with /api/secrets); "
            "raw keys are never stored",
        )
    base_url = fields.get("base_url")
    if base_url:
        try:
            check_url_syntax(base_url)
        except UnsafeURLError as exc:
            bad(("baseUrl",), str(exc))
    if (
        provider is not None
        and api_key is None
        and has_platform_key(provider)
        and not is_platform_endpoint(provider, base_url)
    ):
        bad(
            ("apiKey",),
            "an agent with a custom baseUrl must bring its own key: a ${secrets.NAME} "
            "reference (the platform's provider keys go only to the provider's own endpoint)",
        )
    options = fields.get("provider_options") or {}
    if len(json.dumps(options)) > MAX_PROVIDER_OPTIONS_BYTES:
        bad(("providerOptions",), f"must be at most {MAX_PROVIDER_OPTIONS_BYTES} bytes of JSON")
    elif provider == "scripted":
        from deeployd.agents.providers.scripted import validate_options

        try:
            validate_options(options)
        except ValidationError as exc:
            for error in exc.errors():
                bad(("providerOptions", *error["loc"]), error["msg"])
    if found:
        raise errors.Invalid.of(found)


# ---------------------------------------------------------------------------------------------
# Runs: wire shape
# ---------------------------------------------------------------------------------------------


def run_public(
    row: dict[str, Any], settings: Settings, live: dict[str, Any] | None = None
) -> RunPublic:
    duration_ms = None
    if row["completed_at"] is not None and row["started_at"] is not None:
        duration_ms = int((row["completed_at"] - row["started_at"]).total_seconds() * 1000)
    pending = [
        {k: c.get(k) for k in ("toolCallId", "name", "arguments")}
        for c in row["tool_calls"] or []
        if c.get("status") == "awaiting_approval"
    ]
    run_status = row["status"]
    if live is not None and run_status not in TERMINAL:
        run_status = live.get("status", run_status)
        pending = live.get("pending_approvals", pending)
    return RunPublic(
        id=row["id"],
        agent_id=row["agent_id"],
        agent_name=row["agent_name"],
        conversation_id=row["conversation_id"],
        message_id=row["message_id"],
        status=run_status,
        token_usage=TokenUsage(
            prompt=row["prompt_tokens"],
            completion=row["completion_tokens"],
            total=row["prompt_tokens"] + row["completion_tokens"],
        ),
        cost=row["cost"],
        model_calls=row["model_calls"],
        tool_calls=row["tool_calls"] or [],
        result=row["result"],
        error=row["error"],
        error_code=row["error_code"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        duration_ms=duration_ms,
        workflow_id=row["workflow_id"],
        workflow_url=temporal.workflow_url(settings, row["workflow_id"]),
        pending_approvals=pending if run_status == "input-required" else [],
    )


async def live_state(client: TemporalClient | None, row: dict[str, Any]) -> dict[str, Any] | None:
    """The workflow's own view (status, pending approvals) while it runs; None if unreachable."""
    if client is None or row["status"] in TERMINAL:
        return None
    try:
        state = await asyncio.wait_for(
            client.get_workflow_handle(row["workflow_id"]).query(
                contract.STATE, result_type=RunState
            ),
            timeout=2,
        )
    except (RPCError, TimeoutError, Exception):
        return None
    return {"status": state.status, "pending_approvals": state.pending_approvals}


# ---------------------------------------------------------------------------------------------
# Sending a message: the multitask strategies
# ---------------------------------------------------------------------------------------------


@dataclass
class StartedRun:
    run: dict[str, Any]
    message_id: str


async def send_message(
    services: Services,
    client: TemporalClient,
    org_id: str,
    conversation_id: str,
    content: str,
    *,
    idempotency: IdempotencyKey | None = None,
) -> StartedRun:
    """Store the message, create its run and start the run's workflow.

    With `idempotency`, the key is committed with the message and its run (KeyTaken when a
    concurrent request with the key won), and dropped again if the workflow cannot start.

    While another run of the conversation is active: `reject` -> 409, `enqueue` -> the new run
    waits its turn, `interrupt` -> the active (and queued) runs are cancelled and the new run
    goes next.
    """
    pool = services.db.pool
    run_id = new_id("run")
    message_id = new_id("msg")
    to_cancel: list[str] = []
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT c.id, c.multitask, c.agent_id, a.name AS agent_name, a.approval_required, "
            "a.approval_timeout_ms FROM conversations c "
            "JOIN agents a ON a.id = c.agent_id "
            "WHERE c.id = %s AND c.org_id = %s FOR UPDATE OF c",
            (conversation_id, org_id),
        )
        conv = await cur.fetchone()
        if conv is None:
            raise errors.NotFound("conversation not found")
        await cur.execute(
            "SELECT id, status FROM runs WHERE conversation_id = %s AND status = ANY(%s) "
            "ORDER BY created_at",
            (conversation_id, list(ACTIVE)),
        )
        active = await cur.fetchall()
        if active and conv["multitask"] == "reject":
            raise errors.Conflict(
                f"the conversation is busy with run {active[0]['id']} (multitask strategy 'reject')"
            )
        if conv["multitask"] == "interrupt":
            to_cancel = [r["id"] for r in active]
        # An idle conversation is claimed right here; otherwise the run waits its turn.
        claimed = not active
        await store.insert_run_with_message(
            conn,
            org_id=org_id,
            run_id=run_id,
            message_id=message_id,
            agent_id=conv["agent_id"],
            agent_name=conv["agent_name"],
            conversation_id=conversation_id,
            content=content,
            workflow_id=workflow_id(run_id),
            claimed=claimed,
        )
        if claimed:
            await cur.execute(
                "UPDATE conversations SET active_run_id = %s WHERE id = %s",
                (run_id, conversation_id),
            )
        await cur.execute(
            "UPDATE conversations SET updated_at = now() WHERE id = %s", (conversation_id,)
        )
        if idempotency is not None:
            await remember(conn, idempotency, 202, {"runId": run_id, "messageId": message_id})
    ref = RunRef(
        run_id=run_id, org_id=org_id, agent_id=conv["agent_id"], conversation_id=conversation_id
    )
    plan = None
    if claimed:
        plan = RunPlan(
            claimed=True,
            status="running",
            agent_name=conv["agent_name"],
            approval_required=list(conv["approval_required"] or []),
            approval_timeout_ms=conv["approval_timeout_ms"],
        )
    row = await store.get_run(pool, org_id, run_id)
    assert row is not None
    events = RunEvents(services.publisher, org_id, run_id, conv["agent_id"])
    if claimed:  # what the claim activity announces for runs that had to wait
        await announce_claimed(events, row)
    try:
        await client.start_workflow(
            contract.AGENT_RUN_WORKFLOW,
            AgentRunInput(run=ref, plan=plan),
            id=workflow_id(run_id),
            task_queue=services.settings.task_queue,
            result_type=RunOutcome,
            search_attributes=temporal.search_attributes(
                org_id=org_id,
                agent_id=conv["agent_id"],
                conversation_id=conversation_id,
                status="running" if claimed else "queued",
            ),
            memo={"agentName": conv["agent_name"], "conversationId": conversation_id},
            static_summary=f"{conv['agent_name']}: {content[:80]}",
        )
    except Exception as exc:
        log.exception("could not start workflow for run %s", run_id)
        if idempotency is not None:
            await forget(pool, idempotency)  # a retry with the key tries again
        # Never leave a run behind that no workflow will ever finish.
        failed = await store.update_run(
            pool,
            org_id,
            run_id,
            status="failed",
            error=f"could not start the run: {exc}",
            error_code="start_failed",
            completed_at="now()",
        )
        await store.release_conversation(pool, org_id, conversation_id, run_id)
        if failed is not None:
            await announce_end(
                events,
                failed,
                row["status"],
                error=failed["error"],
                code="start_failed",
                chat_error="could not start the run",
            )
        raise errors.Unavailable("temporal", "could not start the run; try again") from exc
    for other in to_cancel:
        await _cancel_workflow(client, workflow_id(other), other, pool)
    return StartedRun(run=row, message_id=message_id)


async def _cancel_workflow(
    client: TemporalClient, wf_id: str, run_id: str, pool: AsyncConnectionPool
) -> None:
    try:
        await client.get_workflow_handle(wf_id).cancel()
    except RPCError:
        return  # already finished
    # Then stop the model stream at once (see deeployd.agents.cancellation).
    await notify_cancel(pool, run_id)


async def _active_run(services: Services, org_id: str, run_id: str) -> dict[str, Any]:
    """The run's row, refusing a run that does not exist or already ended."""
    row = await store.get_run(services.db.pool, org_id, run_id)
    if row is None:
        raise errors.NotFound("run not found")
    if row["status"] in TERMINAL:
        raise errors.Conflict(f"the run already ended ({row['status']})")
    return row


async def cancel_run(services: Services, client: TemporalClient, org_id: str, run_id: str) -> dict:
    row = await _active_run(services, org_id, run_id)
    await _cancel_workflow(client, row["workflow_id"], run_id, services.db.pool)
    return row


async def approve_run(
    services: Services,
    client: TemporalClient,
    org_id: str,
    run_id: str,
    tool_call_id: str,
    approved: bool,
    comment: str | None,
) -> dict[str, Any]:
    """Deliver a human's decision as a Temporal update; the workflow's validator has the say."""
    row = await _active_run(services, org_id, run_id)
    handle = client.get_workflow_handle(row["workflow_id"])
    try:
        result = await handle.execute_update(
            contract.APPROVE,
            ApprovalInput(tool_call_id=tool_call_id, approved=approved, comment=comment),
            result_type=ApprovalAccepted,
            rpc_timeout=timedelta(seconds=20),
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        raise errors.Conflict(message) from None
    except RPCError as exc:
        raise errors.Conflict(f"the run is not waiting for approval: {exc.message}") from None
    return {"runId": run_id, "toolCallId": result.tool_call_id, "approved": result.approved}


async def wait_for_run(
    services: Services, client: TemporalClient, org_id: str, run_id: str, timeout_s: float
) -> dict[str, Any]:
    """Wait until the run ends (or the timeout passes); returns its row."""
    handle = client.get_workflow_handle(workflow_id(run_id))
    try:
        await asyncio.wait_for(handle.result(), timeout=timeout_s)
    except TimeoutError:
        pass
    except Exception:  # a failed or cancelled run: its row says how
        pass
    row = await store.get_run(services.db.pool, org_id, run_id)
    assert row is not None
    return row
