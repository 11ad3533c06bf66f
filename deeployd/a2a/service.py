"""What the API does with A2A tasks — shared by the a2a-sdk request handler and the REST routes.

Creating a task: the task row (with the caller's message) is committed before its workflow
starts, and the workflow has started before the caller gets an answer. A follow-up message is a
Temporal update whose validator refuses it unless the task is waiting for input, so an accepted
message is in the workflow's history before the caller is told so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from deeployd import errors, temporal
from deeployd.a2a import contract, store
from deeployd.a2a import events as tev
from deeployd.a2a.contract import (
    TERMINAL_STATES,
    A2ATaskInput,
    FollowUpInput,
    TaskOutcome,
    TaskRef,
    TaskSnapshot,
)
from deeployd.agents import store as agent_store
from deeployd.agents.cancellation import notify_cancel
from deeployd.eventlog import EventFilter, StoredEvent, replay
from deeployd.idempotency import IdempotencyKey, forget
from deeployd.services import Services

log = logging.getLogger(__name__)


class A2AServiceError(errors.DomainError):
    """What the task service refuses; each kind is also the deeployd.errors kind it maps to."""


class TaskNotFound(A2AServiceError, errors.NotFound):
    pass


class AgentNotFound(A2AServiceError, errors.NotFound):
    pass


class NotWaitingForInput(A2AServiceError, errors.Conflict):
    pass


class NotCancelable(A2AServiceError, errors.Conflict):
    pass


class Unavailable(A2AServiceError, errors.Unavailable):
    def __init__(self, message: str) -> None:
        errors.Unavailable.__init__(self, "temporal", message)


workflow_id = contract.workflow_id


def normalise_message(
    message: dict[str, Any], *, task_id: str, context_id: str, role: str = "ROLE_USER"
) -> dict[str, Any]:
    result = dict(message)
    result["taskId"] = task_id
    result["contextId"] = context_id
    result["role"] = role
    result.setdefault("messageId", store.new_message_id())
    if not result.get("messageId"):
        result["messageId"] = store.new_message_id()
    return result


async def create_task(
    services: Services,
    client: TemporalClient,
    org_id: str,
    agent_id: str,
    message: dict[str, Any],
    *,
    context_id: str | None = None,
    before_start: Callable[[str], Awaitable[None]] | None = None,
    idempotency: IdempotencyKey | None = None,
) -> dict[str, Any]:
    """Store the task and its first message, then start its workflow; returns the task row.

    With `idempotency`, the key is committed with the task (KeyTaken when a concurrent request
    with the key won) and dropped again if the workflow cannot start.

    `before_start(task_id)` runs between the two (e.g. to store a push-notification config
    that must see the task's first events).
    """
    agent = await agent_store.get_agent(services.db.pool, org_id, agent_id)
    if agent is None:
        raise AgentNotFound("agent not found")
    name = agent["name"]
    task_id = str(uuid.uuid4())
    context_id = context_id or str(uuid.uuid4())
    message = normalise_message(message, task_id=task_id, context_id=context_id)
    wf_id = workflow_id(task_id)
    pool = services.db.pool
    row = await store.insert_task(
        pool,
        task_id=task_id,
        org_id=org_id,
        agent_id=agent_id,
        context_id=context_id,
        workflow_id=wf_id,
        message=message,
        idempotency=idempotency,
    )
    await services.publisher.publish(
        org_id,
        tev.task_stream(task_id),
        tev.MESSAGE,
        tev.message_data(task_id, context_id, message),
    )
    await services.publisher.publish(
        org_id,
        tev.task_stream(task_id),
        tev.STATUS_UPDATE,
        tev.status_data(task_id, context_id, "submitted", None, store.iso(row["created_at"])),
    )
    ref = TaskRef(task_id=task_id, org_id=org_id, agent_id=agent_id, context_id=context_id)
    try:
        if before_start is not None:
            await before_start(task_id)
        await client.start_workflow(
            contract.A2A_TASK_WORKFLOW,
            A2ATaskInput(task=ref),
            id=wf_id,
            task_queue=services.settings.task_queue,
            result_type=TaskOutcome,
            search_attributes=temporal.search_attributes(
                org_id=org_id, agent_id=agent_id, context_id=context_id, status="submitted"
            ),
            memo={"agentName": name, "agentId": agent_id, "contextId": context_id},
            static_summary=f"A2A {name}: {store.message_text(message)[:80]}",
        )
    except Exception as exc:
        log.exception("could not start A2A task %s", task_id)
        if idempotency is not None:
            await forget(pool, idempotency)  # a retry with the key tries again
        # Never leave a submitted task behind that no workflow will ever move.
        failed = await store.update_task(
            pool, org_id, task_id, state="failed", error=f"could not start the task: {exc}"
        )
        if failed is not None:
            await services.publisher.publish(
                org_id,
                tev.task_stream(task_id),
                tev.STATUS_UPDATE,
                tev.status_data(task_id, context_id, "failed"),
            )
        raise Unavailable("could not start the task; try again") from exc
    return row


async def require_task(services: Services, org_id: str, task_id: str) -> dict[str, Any]:
    row = await store.get_task(services.db.pool, org_id, task_id)
    if row is None:
        raise TaskNotFound(f"task {task_id} not found")
    return row


async def send_follow_up(
    services: Services,
    client: TemporalClient,
    org_id: str,
    task_id: str,
    message: dict[str, Any],
) -> dict[str, Any]:
    """Deliver a caller's message to a task waiting for input; returns the task row."""
    row = await require_task(services, org_id, task_id)
    if row["state"] in TERMINAL_STATES:
        raise NotWaitingForInput(f"the task already ended ({row['state']})")
    message = normalise_message(message, task_id=task_id, context_id=row["context_id"])
    handle = client.get_workflow_handle(row["workflow_id"])
    try:
        await handle.execute_update(
            contract.FOLLOW_UP,
            FollowUpInput(message=message),
            rpc_timeout=timedelta(seconds=20),
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise NotWaitingForInput(getattr(cause, "message", None) or str(cause or exc)) from None
    except RPCError as exc:
        raise NotWaitingForInput(f"the task is not waiting for input: {exc.message}") from None
    return row


async def cancel_task(
    services: Services, client: TemporalClient, org_id: str, task_id: str, wait_s: float = 15.0
) -> dict[str, Any]:
    """Cancel the task's workflow (its model call stops) and wait until it is `canceled`."""
    row = await require_task(services, org_id, task_id)
    if row["state"] in TERMINAL_STATES:
        raise NotCancelable(f"the task already ended ({row['state']})")
    handle = client.get_workflow_handle(row["workflow_id"])
    try:
        await handle.cancel()
        # Also a signal: a cancellation arriving as a model call completes is dropped by
        # Temporal (the call's result wins), and the workflow checks this flag between steps.
        await handle.signal(contract.CANCEL_REQUESTED)
    except RPCError as exc:
        raise NotCancelable(f"the task cannot be canceled: {exc.message}") from None
    if row["run_id"]:
        # Closes the model stream at once instead of at the activity's next heartbeat.
        await notify_cancel(services.db.pool, row["run_id"])
    ended = await wait_for(
        services, org_id, task_id, lambda r: r["state"] in TERMINAL_STATES, wait_s
    )
    return ended


async def wait_for(
    services: Services,
    org_id: str,
    task_id: str,
    predicate: Any,
    timeout_s: float,
) -> dict[str, Any]:
    """The task row once `predicate(row)` holds (or as it is when the timeout passes)."""
    row = await require_task(services, org_id, task_id)
    if predicate(row):
        return row
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            async for event in tail(services, org_id, task_id, after=0):
                if event.type == tev.STATUS_UPDATE:
                    row = await require_task(services, org_id, task_id)
                    if predicate(row):
                        return row
    return await require_task(services, org_id, task_id)


async def tail(
    services: Services, org_id: str, task_id: str, *, after: int
) -> AsyncIterator[StoredEvent]:
    """Every event of the task's stream after `after`: stored ones, then live ones, in order."""
    bus = services.require_bus()
    flt = EventFilter(org_id=org_id, streams=frozenset({tev.task_stream(task_id)}))
    sub = bus.subscribe(flt)
    try:
        last = after
        async for event in replay(services.db.pool, flt, after=last):
            last = event.id
            yield event
        while True:
            await sub.wait()
            if sub.overflowed:  # fell behind: catch up from the log and go on live
                bus.unsubscribe(sub)
                sub = bus.subscribe(flt)
                async for event in replay(services.db.pool, flt, after=last):
                    last = event.id
                    yield event
                continue
            for event in sub.drain(256):
                if event.id <= last:
                    continue
                last = event.id
                yield event
            if sub.closed:
                return
    finally:
        bus.unsubscribe(sub)


async def live_state(client: TemporalClient | None, row: dict[str, Any]) -> str | None:
    """The workflow's own view of the state (a query), None when it cannot be asked."""
    if client is None or row["state"] in TERMINAL_STATES:
        return None
    try:
        snapshot = await asyncio.wait_for(
            client.get_workflow_handle(row["workflow_id"]).query(
                contract.STATE, result_type=TaskSnapshot
            ),
            timeout=2,
        )
    except Exception:
        return None
    return str(snapshot.state)
