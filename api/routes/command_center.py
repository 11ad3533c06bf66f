"""The Command Center: a live, organisation-wide view of agent runs, and alert rules."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from sse_starlette import EventSourceResponse

from api.deps import (
    CurrentPrincipal,
    LastEventIdDep,
    ServicesDep,
    SessionDep,
    StreamerDep,
    StreamPrincipal,
    WritePrincipal,
)
from api.query import csv_set
from deeployd.agents import alerts, contract, service, store
from deeployd.eventlog import EventFilter, StoredEvent
from deeployd.models.agent import (
    AlertPublic,
    AlertRuleCreate,
    AlertRulePublic,
    AlertRuleUpdate,
    RunPublic,
)

router = APIRouter(prefix="/api/command-center", tags=["command center"])


# Alerts concern a rule, not one agent: an agent filter keeps every one of them. Derived from the
# one list of Command Center event types, so a new alert type needs no change here.
AGENTLESS_TYPES = frozenset(t for t in contract.COMMAND_CENTER_TYPES if t.startswith("alert:"))


def _agent_filter(agent_ids: frozenset[str]) -> Callable[[StoredEvent], bool]:
    # Run events are kept only for the listed agents; alerts always pass.
    def keep(event: StoredEvent) -> bool:
        return event.type in AGENTLESS_TYPES or event.data().get("agentId") in agent_ids

    return keep


MAX_HISTORY = 500
MAX_LIVE_RUNS = 1000


@router.get("/stream", summary="SSE of the organisation's run and alert events (resumable)")
async def stream(
    principal: StreamPrincipal,
    streamer: StreamerDep,
    resume: LastEventIdDep,
    agent_ids: Annotated[str | None, Query(alias="agentIds")] = None,
    event_types: Annotated[str | None, Query(alias="eventTypes")] = None,
    history: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_HISTORY,
            description="without a Last-Event-ID: replay the last N matching events first",
        ),
    ] = 0,
) -> EventSourceResponse:
    agents = csv_set(agent_ids)
    flt = EventFilter(
        principal.org_id,
        frozenset({contract.org_stream(principal.org_id)}),
        csv_set(event_types),
        _agent_filter(agents) if agents else None,
    )
    # A reconnecting reader sends its Last-Event-ID, which wins: history only seeds a new view.
    if resume is None and history:
        resume = await store.command_center_replay_start(
            streamer.pool,
            flt.org_id,
            flt.streams or (),
            flt.types,
            agents,
            AGENTLESS_TYPES,
            history,
        )
    return streamer.response(flt, resume_after=resume)


@router.get("/runs/live", response_model=list[RunPublic], response_model_by_alias=True)
async def live_runs(principal: CurrentPrincipal, services: ServicesDep) -> list[RunPublic]:
    """Active runs (queued, running, waiting for input), oldest first."""
    rows = await store.list_runs(
        services.db.pool,
        principal.org_id,
        statuses=contract.ACTIVE,
        oldest_first=True,
        limit=MAX_LIVE_RUNS,
    )
    return [service.run_public(r, services.settings) for r in rows]


# --- alert rules -----------------------------------------------------------------------------


@router.post(
    "/alert-rules", status_code=201, response_model=AlertRulePublic, response_model_by_alias=True
)
async def create_rule(
    body: AlertRuleCreate, principal: WritePrincipal, session: SessionDep, services: ServicesDep
) -> AlertRulePublic:
    """Create a rule; it is evaluated at once and whenever a run ends."""
    row = await alerts.create_rule(
        services, session, principal.org_id, body.model_dump(mode="json")
    )
    return AlertRulePublic.model_validate(row.model_dump())


@router.get("/alert-rules", response_model=list[AlertRulePublic], response_model_by_alias=True)
async def list_rules(principal: CurrentPrincipal, session: SessionDep) -> list[AlertRulePublic]:
    rows = await store.list_alert_rules(session, principal.org_id)
    return [AlertRulePublic.model_validate(r.model_dump()) for r in rows]


@router.get("/alert-rules/{rule_id}", response_model=AlertRulePublic, response_model_by_alias=True)
async def get_rule(
    rule_id: str, principal: CurrentPrincipal, session: SessionDep
) -> AlertRulePublic:
    row = await alerts.get_rule(session, principal.org_id, rule_id)
    return AlertRulePublic.model_validate(row.model_dump())


@router.patch(
    "/alert-rules/{rule_id}", response_model=AlertRulePublic, response_model_by_alias=True
)
async def update_rule(
    rule_id: str,
    body: AlertRuleUpdate,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
) -> AlertRulePublic:
    changes = body.model_dump(mode="json", exclude_unset=True)
    row = await alerts.update_rule(services, session, principal.org_id, rule_id, changes)
    return AlertRulePublic.model_validate(row.model_dump())


@router.delete("/alert-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(
    rule_id: str, principal: WritePrincipal, session: SessionDep, services: ServicesDep
) -> None:
    await alerts.delete_rule(services, session, principal.org_id, rule_id)


@router.get("/alerts", response_model=list[AlertPublic], response_model_by_alias=True)
async def list_alerts(
    principal: CurrentPrincipal,
    session: SessionDep,
    services: ServicesDep,
    status_filter: Annotated[
        str | None, Query(alias="status", pattern="^(active|resolved)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Any]:
    """Active and recent alerts, newest first (windowed rules are re-evaluated first)."""
    await alerts.evaluate_org_rules(services, principal.org_id)
    rows = await store.list_alerts(session, principal.org_id, status=status_filter, limit=limit)
    return [AlertPublic.model_validate(r.model_dump()) for r in rows]
