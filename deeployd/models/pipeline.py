"""Pipelines: their configuration, their item log, checkpoints and dead letters.

The wire shapes follow the product docs: `{name, source: {type, ...}, transforms: [{type, config}],
destination: {type, config}, options}`. Transform/source/destination *semantics* are validated
by `deeployd.pipelines.config` (422 with the exact path); here we only check the outline.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from deeployd.models.base import ApiModel, utcnow


class PipelineStatus(StrEnum):
    created = "created"
    running = "running"
    paused = "paused"
    stopped = "stopped"
    failed = "failed"


class SourceSpec(ApiModel):
    model_config = ConfigDict(extra="allow")  # type: ignore[assignment]  # per-type fields

    type: str = Field(min_length=1, max_length=64)


class DestinationSpec(ApiModel):
    type: str = Field(min_length=1, max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)


class TransformSpec(ApiModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    type: str = Field(min_length=1, max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)


class PipelineOptions(ApiModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    batch_size: int = Field(default=1000, ge=1, le=10_000, description="items per activity")
    max_pending: int = Field(
        default=100_000, ge=1, le=100_000_000, description="ingest answers 429 beyond this"
    )
    max_wait_ms: int = Field(
        default=1000, ge=50, le=2000, description="how long a batch waits for new items"
    )
    retention_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 365,
        description="keep processed items (and their dedup keys) at least this long",
    )


class PipelineBase(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    source: SourceSpec
    transforms: list[TransformSpec] = Field(default_factory=list, max_length=100)
    destination: DestinationSpec
    options: PipelineOptions = Field(default_factory=PipelineOptions)


class PipelineCreate(PipelineBase):
    pass


class PipelineUpdate(PipelineBase):
    """PUT replaces the whole configuration; it applies from the current checkpoint on."""


class Pipeline(SQLModel, table=True):
    __tablename__ = "pipelines"
    __table_args__ = (Index("ix_pipelines_org_created", "org_id", "created_at"),)

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id")
    name: str
    source: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    transforms: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    destination: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    options: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default=PipelineStatus.created, sa_column=Column(String, nullable=False))
    config_version: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    # The workflow's committed offset mirrored here so ingest can apply backpressure in the
    # same statement (see deeployd.pipelines.ingest); the offset counter is `PipelineOffset`.
    committed_offset: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    # The workflow state (committed offset, chain state, counters) as last saved: where a
    # stopped pipeline resumes, and what metrics show when no workflow is running.
    state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class PipelineOffset(SQLModel, table=True):
    """The item log's offset counter, one row per pipeline (see deeployd.pipelines.ingest)."""

    __tablename__ = "pipeline_offsets"

    pipeline_id: str = Field(primary_key=True, foreign_key="pipelines.id", ondelete="CASCADE")
    last_offset: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )


class PipelinePublic(PipelineBase):
    id: str
    status: PipelineStatus
    created_at: datetime
    updated_at: datetime
    workflow_id: str | None = None
    temporal_url: str | None = None


class PipelineItem(SQLModel, table=True):
    """One accepted item. `(pipeline_id, offset)` is the key; offsets only ever grow."""

    __tablename__ = "pipeline_items"

    pipeline_id: str = Field(primary_key=True)
    offset: int = Field(sa_column=Column("offset", BigInteger, primary_key=True))
    org_id: str
    value: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    ingested_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    dedup_key: str | None = None


class PipelineChainState(SQLModel, table=True):
    """A transform-chain state too large to carry in workflow history (see runtime)."""

    __tablename__ = "pipeline_chain_states"
    __table_args__ = (Index("ix_pipeline_chain_states_pipeline", "pipeline_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    pipeline_id: str = Field(foreign_key="pipelines.id", ondelete="CASCADE")
    org_id: str
    state: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class PipelineCheckpoint(SQLModel, table=True):
    __tablename__ = "pipeline_checkpoints"
    __table_args__ = (Index("ix_pipeline_checkpoints_pipeline", "pipeline_id", "created_at"),)

    id: str = Field(primary_key=True)
    org_id: str
    pipeline_id: str = Field(foreign_key="pipelines.id", ondelete="CASCADE")
    offset: int = Field(sa_column=Column("offset", BigInteger, nullable=False))
    state: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class CheckpointPublic(ApiModel):
    id: str
    pipeline_id: str
    offset: int
    items_processed: int = 0
    created_at: datetime


class PipelineDeadLetter(SQLModel, table=True):
    __tablename__ = "pipeline_dead_letters"
    __table_args__ = (Index("ix_pipeline_dead_letters_pipeline", "pipeline_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    org_id: str
    pipeline_id: str = Field(foreign_key="pipelines.id", ondelete="CASCADE")
    stage: str  # "transform" (input item, re-ingested on replay) | "delivery" (output, redelivered)
    first_offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    value: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    ingest_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    error: str
    dedup: str  # hash of stage, offsets and value: a retried batch cannot add duplicates
    attempts: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    replayed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class DeadLetterPublic(ApiModel):
    id: int
    stage: str
    first_offset: int
    last_offset: int
    value: dict[str, Any]
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None = None
