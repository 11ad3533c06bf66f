from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Event(SQLModel, table=True):
    """One streamed event. `id` order is commit order (see deeployd.eventlog)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_stream_id", "stream", "id"),
        Index("ix_events_org_id", "org_id", "id"),
        Index("ix_events_created_at", "created_at"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    org_id: str
    stream: str
    type: str
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
