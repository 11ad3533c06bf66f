"""Agents: what model, prompt and tools a conversation's runs use."""

from fastapi import APIRouter, HTTPException, status
from sqlmodel import col, select

from api.deps import CurrentPrincipal, SessionDep, WritePrincipal
from deeployd.agents.service import validate_agent
from deeployd.ids import new_id
from deeployd.models import utcnow
from deeployd.models.agent import Agent, AgentCreate, AgentPublic, AgentUpdate, Conversation

router = APIRouter(prefix="/api/agents", tags=["agents"])


def _public(row: Agent) -> AgentPublic:
    return AgentPublic.model_validate(row.model_dump())


async def _get(session: SessionDep, org_id: str, agent_id: str) -> Agent:
    row = (
        await session.exec(select(Agent).where(Agent.id == agent_id, Agent.org_id == org_id))
    ).first()
    if row is None:
        raise HTTPException(404, "agent not found")
    return row


@router.post("", status_code=201, response_model=AgentPublic, response_model_by_alias=True)
async def create_agent(
    body: AgentCreate, principal: WritePrincipal, session: SessionDep
) -> AgentPublic:
    validate_agent(body.model_dump())
    data = body.model_dump()
    row = Agent(id=new_id("agt"), org_id=principal.org_id, **data)
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return _public(row)


@router.get("", response_model=list[AgentPublic], response_model_by_alias=True)
async def list_agents(principal: CurrentPrincipal, session: SessionDep) -> list[AgentPublic]:
    rows = await session.exec(
        select(Agent).where(Agent.org_id == principal.org_id).order_by(col(Agent.created_at))
    )
    return [_public(r) for r in rows]


@router.get("/{agent_id}", response_model=AgentPublic, response_model_by_alias=True)
async def get_agent(agent_id: str, principal: CurrentPrincipal, session: SessionDep) -> AgentPublic:
    return _public(await _get(session, principal.org_id, agent_id))


async def _update(
    agent_id: str, body: AgentUpdate, principal: WritePrincipal, session: SessionDep
) -> AgentPublic:
    row = await _get(session, principal.org_id, agent_id)
    changes = body.model_dump(exclude_unset=True)
    merged = {**row.model_dump(), **changes}
    validate_agent(merged)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return _public(row)


@router.patch("/{agent_id}", response_model=AgentPublic, response_model_by_alias=True)
async def patch_agent(
    agent_id: str, body: AgentUpdate, principal: WritePrincipal, session: SessionDep
) -> AgentPublic:
    """Change some fields; runs already started keep going, new model calls see the change."""
    return await _update(agent_id, body, principal, session)


@router.put("/{agent_id}", response_model=AgentPublic, response_model_by_alias=True)
async def put_agent(
    agent_id: str, body: AgentCreate, principal: WritePrincipal, session: SessionDep
) -> AgentPublic:
    return await _update(
        agent_id, AgentUpdate.model_validate(body.model_dump()), principal, session
    )


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_agent(agent_id: str, principal: WritePrincipal, session: SessionDep) -> None:
    row = await _get(session, principal.org_id, agent_id)
    used = (
        await session.exec(select(Conversation.id).where(Conversation.agent_id == agent_id))
    ).first()
    if used is not None:
        raise HTTPException(409, "the agent has conversations; delete those first")
    await session.delete(row)
    await session.commit()
