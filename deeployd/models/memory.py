"""Conversation memory for agents: facts the `memory_write` tool stored, searchable by text."""

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Text, text
from sqlmodel import Field, SQLModel


class AgentMemory(SQLModel, table=True):
    __tablename__ = "agent_memories"
    __table_args__ = (
        # Every query filters by (org_id, conversation_id); newest first is the default order.
        Index("ix_agent_memories_org_conv", "org_id", "conversation_id", "created_at"),
    )

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id")
    conversation_id: str
    content: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
