"""The Command Center: a live, organisation-wide view of agent runs, and alert rules."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlmodel import col, select
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
from deeployd.agents import events as ev
from deeployd.agents import service, store
from deeployd.agents.alerts import ensure_sweep_schedule, evaluate_org_rules, evaluate_rule
from deeployd.eventlog import EventFilter, StoredEvent
from deeployd.ids import new_id
from deeployd.models import utcnow
from deeployd.models.agent import (
    Alert,
    AlertPublic,
    AlertRule,
    AlertRuleCreate,
    AlertRulePublic,
    AlertRuleUpdate,
    RunPublic,
)

router = APIRouter(prefix="/api/command-center", tags=["command center"])


def _csv(value: str | None) -> frozenset[str] | None:
    items = frozenset(part.strip() for part in (value or "").split(",") if part.strip())
    return items or None


def _agent_filter(agent_ids: frozenset[str]):  # type: ignore[no-untyped-def]
    # Run events are kept only for the listed agents; alerts always pass.
    def keep(event: StoredEvent) -> bool:
        if event.type.startswith("alert:"):
            return True
        return event.data().get("agentId") in agent_ids

    return keep


MAX_HISTORY = 500


async def _history_start(
    pool: AsyncConnectionPool, flt: EventFilter, agents: frozenset[str] | None, count: int
) -> int | None:
    """The id to replay after so that the last `count` matching events come first (or None)."""
    clauses = ["org_id = %s", "stream = ANY(%s)"]
    params: list[Any] = [flt.org_id, list(flt.streams or ())]
    if flt.types is not None:
        clauses.append("type = ANY(%s)")
        params.append(list(flt.types))
    if agents:  # the same rule as `_agent_filter`, in SQL so the count is of matching events
        clauses.append("(type LIKE 'alert:%%' OR data->>'agentId' = ANY(%s))")
        params.append(list(agents))
    params.append(count)
    async with pool.connection() as conn:
        cursor = await conn.execute(
            f"SELECT min(id) FROM (SELECT id FROM events WHERE {' AND '.join(clauses)} "
            "ORDER BY id DESC LIMIT %s) AS recent",
            params,
        )
        row = await cursor.fetchone()
    return int(row[0]) - 1 if row is not None and row[0] is not None else None


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
    agents = _csv(agent_ids)
    flt = EventFilter(
        principal.org_id,
        frozenset({ev.org_stream(principal.org_id)}),
        _csv(event_types),
        _agent_filter(agents) if agents else None,
    )
    # A reconnecting reader sends its Last-Event-ID, which wins: history only seeds a new view.
    if resume is None and history:
        resume = await _history_start(streamer.pool, flt, agents, history)
    return streamer.response(flt, resume_after=resume)


@router.get("/runs/live", response_model=list[RunPublic], response_model_by_alias=True)
async def live_runs(principal: CurrentPrincipal, services: ServicesDep) -> list[RunPublic]:
    """Active runs (queued, running, waiting for input), oldest first."""
    async with services.db.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {store._RUN_COLUMNS} FROM runs WHERE org_id = %s AND status = ANY(%s) "
            "ORDER BY created_at LIMIT 1000",
            (principal.org_id, list(service.ACTIVE)),
        )
        rows = await cur.fetchall()
    return [service.run_public(r, services.settings) for r in rows]


# --- alert rules -----------------------------------------------------------------------------


async def _rule(session: SessionDep, org_id: str, rule_id: str) -> AlertRule:
    row = (
        await session.exec(
            select(AlertRule).where(AlertRule.id == rule_id, AlertRule.org_id == org_id)
        )
    ).first()
    if row is None:
        raise HTTPException(404, "alert rule not found")
    return row


async def _evaluated(
    services: ServicesDep, session: SessionDep, org_id: str, rule_id: str
) -> AlertRulePublic:
    await evaluate_rule(services, org_id, rule_id)
    row = await _rule(session, org_id, rule_id)
    await session.refresh(row)
    return AlertRulePublic.model_validate(row.model_dump())


@router.post(
    "/alert-rules", status_code=201, response_model=AlertRulePublic, response_model_by_alias=True
)
async def create_rule(
    body: AlertRuleCreate, principal: WritePrincipal, session: SessionDep, services: ServicesDep
) -> AlertRulePublic:
    """Create a rule; it is evaluated at once and whenever a run ends."""
    row = AlertRule(id=new_id("alr"), org_id=principal.org_id, **body.model_dump(mode="json"))
    session.add(row)
    await session.commit()
    if services.temporal is not None:  # windowed rules also clear as time passes
        await ensure_sweep_schedule(services.temporal, services.settings)
    return await _evaluated(services, session, principal.org_id, row.id)


@router.get("/alert-rules", response_model=list[AlertRulePublic], response_model_by_alias=True)
async def list_rules(principal: CurrentPrincipal, session: SessionDep) -> list[AlertRulePublic]:
    rows = await session.exec(
        select(AlertRule)
        .where(AlertRule.org_id == principal.org_id)
        .order_by(col(AlertRule.created_at))
    )
    return [AlertRulePublic.model_validate(r.model_dump()) for r in rows]


@router.get("/alert-rules/{rule_id}", response_model=AlertRulePublic, response_model_by_alias=True)
async def get_rule(
    rule_id: str, principal: CurrentPrincipal, session: SessionDep
) -> AlertRulePublic:
    return AlertRulePublic.model_validate(
        (await _rule(session, principal.org_id, rule_id)).model_dump()
    )


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
    row = await _rule(session, principal.org_id, rule_id)
    for key, value in body.model_dump(mode="json", exclude_unset=True).items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    return await _evaluated(services, session, principal.org_id, rule_id)


@router.delete("/alert-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(
    rule_id: str, principal: WritePrincipal, session: SessionDep, services: ServicesDep
) -> None:
    row = await _rule(session, principal.org_id, rule_id)
    if row.state == "firing":  # resolve its alert first, so nothing stays active forever
        row.enabled = False
        session.add(row)
        await session.commit()
        await evaluate_rule(services, principal.org_id, rule_id)
        await session.refresh(row)
    await session.delete(row)
    await session.commit()


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
    await evaluate_org_rules(services, principal.org_id)
    query = select(Alert).where(Alert.org_id == principal.org_id)
    if status_filter:
        query = query.where(Alert.status == status_filter)
    rows = await session.exec(query.order_by(col(Alert.triggered_at).desc()).limit(limit))
    return [AlertPublic.model_validate(r.model_dump()) for r in rows]
