"""A2A tasks over the platform's REST API (the docs' "A2A Task Streaming"), and the mounting of
the A2A protocol endpoints (`api.a2a_server`) plus the organisation's default agent card.

    POST /api/a2a/tasks                  {agentId, message, contextId?} -> 201 task
    GET  /api/a2a/tasks                  ?agentId&contextId&state&pageSize&pageToken
    GET  /api/a2a/tasks/{id}             the task (A2A 1.0 JSON)
    POST /api/a2a/tasks/{id}/messages    {content}: answer a task in `input-required`
    POST /api/a2a/tasks/{id}/cancel
    GET  /api/a2a/tasks/{id}/stream      SSE: task, message, statusUpdate, artifactUpdate
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response, status
from sse_starlette import ServerSentEvent

from api.a2a_server import PREFIX, build_a2a_app, card_response, load_agent
from api.deps import (
    CurrentPrincipal,
    IdempotencyKeyHeader,
    LastEventIdDep,
    ServicesDep,
    StreamerDep,
    StreamPrincipal,
    TemporalDep,
    WritePrincipal,
    idempotency_key,
)
from api.sse import encode_control
from api.sse_ended import EndTracker, StreamEnd, StreamReader
from deeployd.a2a import events as tev
from deeployd.a2a import service, store
from deeployd.a2a import tools as _tools  # noqa: F401  (registers ask_user / call_agent)
from deeployd.a2a.contract import TASK_STATES
from deeployd.errors import Conflict, Invalid, NotFound
from deeployd.eventlog import EventFilter, StoredEvent
from deeployd.idempotency import KeyTaken, canonical_json, lookup_in
from deeployd.models.a2a import A2AFollowUp, A2ATaskCreate
from deeployd.services import Services

router = APIRouter(tags=["a2a"])


def mount(app: FastAPI) -> None:
    """Mount the a2a-sdk endpoints (JSON-RPC, HTTP+JSON, agent cards) at /a2a."""
    app.mount(PREFIX, build_a2a_app(app), name="a2a")


def _http_error(exc: service.A2AServiceError) -> Exception:
    """The service's refusal as the API says it (404, 409; 503 when Temporal is missing)."""
    if isinstance(exc, service.TaskNotFound | service.AgentNotFound):
        return NotFound(exc.message)
    if isinstance(exc, service.NotWaitingForInput | service.NotCancelable):
        return Conflict(exc.message)
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message)


async def _task_json(services: Services, org_id: str, task_id: str) -> dict[str, Any]:
    try:
        row = await service.require_task(services, org_id, task_id)
    except service.TaskNotFound as exc:
        raise _http_error(exc) from None
    return store.task_json(row)


@router.get("/.well-known/agent-card.json", summary="The organisation's default agent's A2A card")
async def default_agent_card(
    principal: CurrentPrincipal, services: ServicesDep, request: Request
) -> Any:
    agent = await load_agent(services, principal.org_id, None)
    if agent is None:
        raise NotFound("the organisation has no agent yet")
    return card_response(agent, request)


@router.post("/api/a2a/tasks", status_code=status.HTTP_201_CREATED, summary="Create a task")
async def create_task(
    body: A2ATaskCreate,
    request: Request,
    principal: WritePrincipal,
    services: ServicesDep,
    client: TemporalDep,
    key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """A retry with the same `Idempotency-Key` creates nothing and answers with the task the
    first request created (as it is now)."""
    idempotency = idempotency_key(
        request, principal, key, canonical_json(body.model_dump(mode="json"))
    )
    message = body.a2a_message()
    while True:
        stored = await lookup_in(services.db.pool, idempotency) if idempotency else None
        if stored is not None:
            return await _task_json(services, principal.org_id, stored.body["taskId"])
        try:
            row = await service.create_task(
                services,
                client,
                principal.org_id,
                body.agent_id,
                message,
                context_id=body.task_context_id(),
                idempotency=idempotency,
            )
        except service.A2AServiceError as exc:
            raise _http_error(exc) from None
        except KeyTaken:
            continue  # a concurrent request with the key created the task: answer with it
        return store.task_json(row)


@router.get("/api/a2a/tasks", summary="List tasks, newest first")
async def list_tasks(
    principal: CurrentPrincipal,
    services: ServicesDep,
    agent_id: Annotated[str | None, Query(alias="agentId")] = None,
    context_id: Annotated[str | None, Query(alias="contextId")] = None,
    state: Annotated[str | None, Query()] = None,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 50,
    page_token: Annotated[str | None, Query(alias="pageToken")] = None,
) -> dict[str, Any]:
    if state is not None and state not in TASK_STATES:
        raise Invalid(("query", "state"), f"must be one of {', '.join(TASK_STATES)}")
    try:
        rows, next_token, total = await store.list_tasks(
            services.db.pool,
            principal.org_id,
            agent_id=agent_id,
            context_id=context_id,
            state=state,
            page_size=page_size,
            page_token=page_token,
        )
    except (ValueError, TypeError):
        raise Invalid(("query", "pageToken"), "not a page token") from None
    return {
        "tasks": [store.task_json(row) for row in rows],
        "nextPageToken": next_token,
        "totalSize": total,
    }


@router.get("/api/a2a/tasks/{task_id}", summary="One task with its history and artifacts")
async def get_task(
    task_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    return await _task_json(services, principal.org_id, task_id)


@router.post(
    "/api/a2a/tasks/{task_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Answer a task waiting in input-required",
)
async def send_message(
    task_id: str,
    body: A2AFollowUp,
    principal: WritePrincipal,
    services: ServicesDep,
    client: TemporalDep,
) -> dict[str, Any]:
    message = A2ATaskCreate.user_message([{"text": body.content}])
    try:
        await service.send_follow_up(services, client, principal.org_id, task_id, message)
    except service.A2AServiceError as exc:
        raise _http_error(exc) from None
    return await _task_json(services, principal.org_id, task_id)


@router.post("/api/a2a/tasks/{task_id}/cancel", summary="Cancel a task (stops its model call)")
async def cancel_task(
    task_id: str, principal: WritePrincipal, services: ServicesDep, client: TemporalDep
) -> dict[str, Any]:
    try:
        row = await service.cancel_task(services, client, principal.org_id, task_id)
    except service.A2AServiceError as exc:
        raise _http_error(exc) from None
    return store.task_json(row)


def _ends(event: StoredEvent) -> bool:
    return event.type == tev.STATUS_UPDATE and bool(event.data().get("final"))


@router.get("/api/a2a/tasks/{task_id}/stream", summary="The task's events (SSE, resumable)")
async def stream_task(
    task_id: str,
    principal: StreamPrincipal,
    services: ServicesDep,
    streamer: StreamerDep,
    resume: LastEventIdDep,
    reader: StreamReader,
) -> Response:
    """First `{type: 'task', task}` (the current state), then the task's events from the log
    (from its beginning, or after `Last-Event-ID`), live until the task ends. A reader that
    already has the task's final status (by Last-Event-ID, or a browser that was sent it and
    reconnects without one) gets 204, which stops an EventSource from reconnecting."""
    try:
        row = await service.require_task(services, principal.org_id, task_id)
    except service.TaskNotFound as exc:
        raise _http_error(exc) from None
    flt = EventFilter(principal.org_id, frozenset({tev.task_stream(task_id)}))
    end = StreamEnd(tev.task_stream(task_id), frozenset({tev.STATUS_UPDATE}), _ends)
    tracker = EndTracker(streamer.ended, streamer.pool, flt, end, reader)
    if await tracker.already_ended(resume):
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    task = store.task_json(row)
    live = await service.live_state(services.temporal, row)
    if live is not None:
        task["status"]["state"] = store.proto_state_name(live)

    async def frames() -> AsyncIterator[bytes | ServerSentEvent]:
        # The snapshot has no id: it does not move the reader's resume point.
        yield encode_control({"type": tev.TASK, "task": task})
        async for frame in streamer.frames(
            flt, resume_after=resume if resume is not None else 0, stop_when=tracker.stop_when
        ):
            yield frame

    return streamer.sse(frames(), headers=tracker.headers())
