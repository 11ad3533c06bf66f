"""The demo agent `deeployd dev` creates, so a fresh install streams, calls tools and asks for
approval with no API key: the scripted provider plays DEMO_SCRIPT (it is not a language model).

Its `http_request` call waits for a human for at most DEMO_APPROVAL_TIMEOUT_MS; with no decision
by then the call is rejected and the run ends, so an unattended demo run never lingers in
`input-required`.
"""

from __future__ import annotations

from sqlmodel import select

from deeployd.agents.providers import DEMO_APPROVAL_REQUIRED, DEMO_SCRIPT, DEMO_TOOLS
from deeployd.db import Database
from deeployd.ids import new_id
from deeployd.models.agent import Agent
from deeployd.models.base import utcnow

DEMO_AGENT_NAME = "demo"
DEMO_APPROVAL_TIMEOUT_MS = 120_000  # two minutes to approve, then the call is rejected


async def ensure_demo_agent(db: Database, org_id: str) -> Agent:
    """Create the demo agent in `org_id` unless an agent named "demo" exists; return it.

    A demo agent created before approvals timed out (scripted, no `approvalTimeoutMs`) gets
    DEMO_APPROVAL_TIMEOUT_MS; nothing else of an existing agent is changed, and an agent named
    "demo" on another provider, or one with its own timeout, is left alone.
    """
    async with db.session() as session:
        existing = (
            await session.exec(
                select(Agent).where(Agent.org_id == org_id, Agent.name == DEMO_AGENT_NAME)
            )
        ).first()
        if existing is not None:
            if existing.provider == "scripted" and existing.approval_timeout_ms is None:
                existing.approval_timeout_ms = DEMO_APPROVAL_TIMEOUT_MS
                existing.updated_at = utcnow()
                session.add(existing)
                await session.commit()
                await session.refresh(existing)
            return existing
        agent = Agent(
            id=new_id("agt"),
            org_id=org_id,
            name=DEMO_AGENT_NAME,
            description=(
                "Demo: streams a scripted reply, calls the calculator, then asks a human to "
                "approve an HTTP request (rejected after two minutes without a decision). "
                "Scripted provider — not a language model."
            ),
            provider="scripted",
            model="scripted",
            system_prompt="You are the Deeployd demo agent.",
            tools=list(DEMO_TOOLS),
            approval_required=list(DEMO_APPROVAL_REQUIRED),
            approval_timeout_ms=DEMO_APPROVAL_TIMEOUT_MS,
            provider_options={"script": DEMO_SCRIPT, "tokenDelayMs": 30},
        )
        session.add(agent)
        await session.commit()
        await session.refresh(agent)
        return agent
