"""The demo agent `deeployd dev` creates, so a fresh install streams, calls tools and asks for
approval with no API key: the scripted provider plays DEMO_SCRIPT (it is not a language model)."""

from __future__ import annotations

from sqlmodel import select

from deeployd.agents.providers import DEMO_APPROVAL_REQUIRED, DEMO_SCRIPT, DEMO_TOOLS
from deeployd.db import Database
from deeployd.ids import new_id
from deeployd.models.agent import Agent

DEMO_AGENT_NAME = "demo"


async def ensure_demo_agent(db: Database, org_id: str) -> Agent:
    """Create the demo agent in `org_id` unless an agent named "demo" exists; return it."""
    async with db.session() as session:
        existing = (
            await session.exec(
                select(Agent).where(Agent.org_id == org_id, Agent.name == DEMO_AGENT_NAME)
            )
        ).first()
        if existing is not None:
            return existing
        agent = Agent(
            id=new_id("agt"),
            org_id=org_id,
            name=DEMO_AGENT_NAME,
            description=(
                "Demo: streams a scripted reply, calls the calculator, then asks a human to "
                "approve an HTTP request. Scripted provider — not a language model."
            ),
            provider="scripted",
            model="scripted",
            system_prompt="You are the Deeployd demo agent.",
            tools=list(DEMO_TOOLS),
            approval_required=list(DEMO_APPROVAL_REQUIRED),
            provider_options={"script": DEMO_SCRIPT, "tokenDelayMs": 30},
        )
        session.add(agent)
        await session.commit()
        await session.refresh(agent)
        return agent
