"""Agent runs: find them, follow them, approve their tool calls, cancel them."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.deps import (
    CurrentPrincipal,
    LastEventIdDep,
    ServicesDep,
    StreamerDep,
    StreamPrincipal,
    TemporalDep,
    WritePrincipal,
)
from api.lookup import found
from api.sse_ended import EndTracker
from deeployd.agents import contract, service, store
from deeployd.agents import events as ev
from deeployd.eventlog import EventFilter
from deeployd.models.agent import ApprovalDecision, RunPublic, RunStatus

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("", response_model=list[RunPublic], response_model_by_alias=True)
async def list_runs(
    principal: CurrentPrincipal,
    services: ServicesDep,
    agent_id: Annotated[str | None, Query(alias="agentId")] = None,
    conversation_id: Annotated[str | None, Query(alias="conversationId")] = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RunPublic]:
    """Newest first. `since` (ISO time) keeps runs created at or after it."""
    rows = await store.list_runs(
        services.db.pool,
        principal.org_id,
        agent_id=agent_id,
        conversation_id=conversation_id,
        statuses=None if status is None else (status.value,),
        since=since,
        limit=limit,
    )
    return [service.run_public(r, services.settings) for r in rows]


@router.get("/{run_id}", response_model=RunPublic, response_model_by_alias=True)
async def get_run(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> RunPublic:
    """The run's row; while it is active, status and pending approvals come from the workflow."""
    row = found(await store.get_run(services.db.pool, principal.org_id, run_id), "run")
    live = await service.live_state(services.temporal, row)
    return service.run_public(row, services.settings, live)


@router.get("/{run_id}/stream", summary="SSE of one run (tokens, tool calls, approvals, done)")
async def stream_run(
    run_id: str,
    principal: StreamPrincipal,
    services: ServicesDep,
    streamer: StreamerDep,
    resume: LastEventIdDep,
) -> Response:
    found(await store.get_run(services.db.pool, principal.org_id, run_id), "run")
    flt = EventFilter(principal.org_id, frozenset({contract.run_stream(run_id)}))
    # Resuming at or past the run's end: 204, so an EventSource stops reconnecting.
    end = ev.run_end(run_id)
    tracker = EndTracker(streamer.ended, streamer.pool, flt, end, None, remember=False)
    if await tracker.already_ended(resume):
        return Response(status_code=204)
    return streamer.response(
        flt, resume_after=resume if resume is not None else 0, stop_when=end.ends
    )


@router.post("/{run_id}/approve")
async def approve(
    run_id: str,
    body: ApprovalDecision,
    principal: WritePrincipal,
    services: ServicesDep,
    client: TemporalDep,
) -> dict[str, Any]:
    """Approve or reject a tool call the run is waiting on (409 if it is not waiting for it)."""
    return await service.approve_run(
        services,
        client,
        principal.org_id,
        run_id,
        body.tool_call_id,
        body.approved,
        body.comment,
    )


@router.post("/{run_id}/cancel", status_code=202)
async def cancel(
    run_id: str, principal: WritePrincipal, services: ServicesDep, client: TemporalDep
) -> JSONResponse:
    """Request cancellation: the model stream stops and the run ends as `cancelled`."""
    row = await service.cancel_run(services, client, principal.org_id, run_id)
    return JSONResponse({"runId": row["id"], "status": "cancelling"}, status_code=202)
