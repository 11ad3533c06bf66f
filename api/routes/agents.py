"""Agents: what model, prompt and tools a conversation's runs use."""

from fastapi import APIRouter, status

from api.deps import CurrentPrincipal, SessionDep, WritePrincipal
from api.lookup import found
from deeployd.agents import store
from deeployd.agents.service import validate_agent
from deeployd.errors import Conflict
from deeployd.ids import new_id
from deeployd.models import utcnow
from deeployd.models.agent import Agent, AgentCreate, AgentPublic, AgentUpdate

router = APIRouter(prefix="/api/agents", tags=["agents"])


def _public(row: Agent) -> AgentPublic:
    return AgentPublic.model_validate(row.model_dump())


async def _get(session: SessionDep, org_id: str, agent_id: str) -> Agent:
    return found(await store.find_owned(session, Agent, org_id, agent_id), "agent")


@router.post("", status_code=201, response_model=AgentPublic, response_model_by_alias=True)
async def create_agent(
    body: AgentCreate, principal: WritePrincipal, session: SessionDep
) -> AgentPublic:
    validate_agent(body.model_dump())
    row = Agent(id=new_id("agt"), org_id=principal.org_id, **body.model_dump())
    await store.save_row(session, row)
    return _public(row)


@router.get("", response_model=list[AgentPublic], response_model_by_alias=True)
async def list_agents(principal: CurrentPrincipal, session: SessionDep) -> list[AgentPublic]:
    return [_public(r) for r in await store.list_agents(session, principal.org_id)]


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
    await store.save_row(session, row)
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
    if await store.agent_has_conversations(session, principal.org_id, agent_id):
        raise Conflict("the agent has conversations; delete those first")
    await store.delete_row(session, row)
