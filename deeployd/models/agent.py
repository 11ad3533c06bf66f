"""Agents, conversations, their messages, runs, and Command Center alert rules.

Table models are plain SQLModel rows (snake_case columns); the `…Public` / `…Create` shapes are
what crosses the wire (camelCase through `ApiModel`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import field_validator
from sqlalchemy import BigInteger, Column, DateTime, Identity, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from deeployd.models.base import ApiModel, patch_field, utcnow

# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------


class PricingSpec(ApiModel):
    """Per-agent price override (USD per million tokens)."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class AgentBase(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=200)
    system_prompt: str = Field(default="", max_length=100_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    tools: list[str] = Field(default_factory=list, max_length=64)
    approval_required: list[str] = Field(default_factory=list, max_length=64)
    pricing: PricingSpec | None = None
    base_url: str | None = Field(default=None, max_length=2000)
    # Only a `${secrets.NAME}` reference is accepted (checked in the service layer).
    api_key: str | None = Field(default=None, max_length=200)
    provider_options: dict[str, Any] = Field(default_factory=dict)
    approval_timeout_ms: int | None = Field(default=None, ge=1000, le=7 * 24 * 3600 * 1000)


class AgentCreate(AgentBase):
    pass


class AgentUpdate(ApiModel):
    """PATCH body: every field optional; only the ones sent change (`null` only clears the
    nullable ones)."""

    name: str = patch_field(min_length=1, max_length=200)
    description: str = patch_field(max_length=4000)
    provider: str = patch_field(min_length=1, max_length=64)
    model: str = patch_field(min_length=1, max_length=200)
    system_prompt: str = patch_field(max_length=100_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    tools: list[str] = patch_field(max_length=64)
    approval_required: list[str] = patch_field(max_length=64)
    pricing: PricingSpec | None = None
    base_url: str | None = Field(default=None, max_length=2000)
    api_key: str | None = Field(default=None, max_length=200)
    provider_options: dict[str, Any] = patch_field()
    approval_timeout_ms: int | None = Field(default=None, ge=1000, le=7 * 24 * 3600 * 1000)


class Agent(SQLModel, table=True):
    __tablename__ = "agents"

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id", index=True)
    name: str
    description: str = ""
    provider: str
    model: str
    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    tools: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    approval_required: list[str] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False)
    )
    pricing: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    base_url: str | None = None
    api_key: str | None = None
    provider_options: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False)
    )
    approval_timeout_ms: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class AgentPublic(AgentBase):
    id: str
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------------------------------------
# Conversations and messages
# ---------------------------------------------------------------------------------------------


class Multitask(StrEnum):
    """What a message sent while the conversation's run is busy does."""

    reject = "reject"  # 409
    enqueue = "enqueue"  # runs after the current one (default)
    interrupt = "interrupt"  # cancels the current run, then runs


class ConversationCreate(ApiModel):
    agent_id: str = Field(min_length=1, max_length=64)
    title: str | None = Field(default=None, max_length=500)
    multitask: Multitask = Multitask.enqueue


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id", index=True)
    agent_id: str = Field(foreign_key="agents.id", index=True)
    title: str | None = None
    multitask: str = Multitask.enqueue.value
    # The run that holds the conversation (running or waiting for approval); queued runs wait.
    active_run_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_seq", "conversation_id", "seq"),)

    # `seq` orders a conversation's messages (commit order is irrelevant; insertion order is).
    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    id: str = Field(unique=True)
    org_id: str = Field(index=True)
    conversation_id: str
    run_id: str | None = Field(default=None, index=True)
    role: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False)
    )
    tool_call_id: str | None = None
    # Idempotency key for messages written by (retryable) activities.
    dedup_key: str | None = Field(default=None, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class MessageCreate(ApiModel):
    content: str = Field(min_length=1, max_length=200_000)


class MessagePublic(ApiModel):
    id: str
    conversation_id: str
    run_id: str | None = None
    role: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    tool_call_id: str | None = None
    created_at: datetime


class ConversationPublic(ApiModel):
    id: str
    agent_id: str
    title: str | None = None
    multitask: Multitask
    active_run_id: str | None = None
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationPublic):
    messages: list[MessagePublic] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    input_required = "input-required"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_org_created", "org_id", "created_at"),
        Index("ix_runs_conversation", "conversation_id", "created_at"),
    )

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id")
    agent_id: str = Field(index=True)
    agent_name: str
    conversation_id: str
    message_id: str | None = None
    status: str = RunStatus.queued.value
    workflow_id: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    model_calls: int = 0
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False)
    )
    result: str | None = None
    error: str | None = None
    error_code: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    completed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class TokenUsage(ApiModel):
    prompt: int = 0
    completion: int = 0
    total: int = 0


class RunPublic(ApiModel):
    id: str
    agent_id: str
    agent_name: str
    conversation_id: str
    message_id: str | None = None
    status: str
    token_usage: TokenUsage
    cost: float
    model_calls: int = 0
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    result: str | None = None
    error: str | None = None
    error_code: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    workflow_id: str
    workflow_url: str
    pending_approvals: list[dict[str, Any]] = Field(default_factory=list)


class ApprovalDecision(ApiModel):
    tool_call_id: str = Field(min_length=1, max_length=200)
    approved: bool
    comment: str | None = Field(default=None, max_length=4000)


# ---------------------------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------------------------


class AlertMetric(StrEnum):
    run_cost = "run_cost"
    run_tokens = "run_tokens"
    run_duration_ms = "run_duration_ms"
    error_rate = "error_rate"
    runs_failed = "runs_failed"


class Comparator(StrEnum):
    gt = "gt"
    gte = "gte"
    lt = "lt"
    lte = "lte"
    eq = "eq"


def _non_empty_ids(value: list[str] | None) -> list[str] | None:
    if value is not None and any(not v for v in value):
        raise ValueError("agent ids must be non-empty strings")
    return value


class AlertRuleBase(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    metric: AlertMetric
    comparator: Comparator
    threshold: float
    window_ms: int | None = Field(default=None, ge=1000, le=30 * 24 * 3600 * 1000)
    agent_ids: list[str] | None = Field(default=None, max_length=200)
    enabled: bool = True

    _no_empty_ids = field_validator("agent_ids")(_non_empty_ids)


class AlertRuleCreate(AlertRuleBase):
    pass


class AlertRuleUpdate(ApiModel):
    name: str = patch_field(min_length=1, max_length=200)
    metric: AlertMetric = patch_field()
    comparator: Comparator = patch_field()
    threshold: float = patch_field()
    window_ms: int | None = Field(default=None, ge=1000, le=30 * 24 * 3600 * 1000)
    agent_ids: list[str] | None = Field(default=None, max_length=200)
    enabled: bool = patch_field()

    # Checked as at creation: a stored rule must read back as an AlertRulePublic.
    _no_empty_ids = field_validator("agent_ids")(_non_empty_ids)


class AlertRule(SQLModel, table=True):
    __tablename__ = "alert_rules"

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id", index=True)
    name: str
    metric: str
    comparator: str
    threshold: float
    window_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    agent_ids: list[str] | None = Field(default=None, sa_column=Column(JSONB))
    enabled: bool = True
    # Rule state lives in the database so every evaluator (any worker) agrees on transitions.
    state: str = "ok"  # ok | firing
    active_alert_id: str | None = None
    last_value: float | None = None
    last_evaluated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True)))


class AlertRulePublic(AlertRuleBase):
    id: str
    state: str
    active_alert_id: str | None = None
    last_value: float | None = None
    last_evaluated_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_org_triggered", "org_id", "triggered_at"),)

    id: str = Field(primary_key=True)
    org_id: str = Field(foreign_key="organizations.id")
    rule_id: str = Field(index=True)
    rule_name: str
    metric: str
    comparator: str
    threshold: float
    value: float
    status: str = "active"  # active | resolved
    run_id: str | None = None
    triggered_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True))
    )
    resolved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    resolved_value: float | None = None


class AlertPublic(ApiModel):
    id: str
    rule_id: str
    rule_name: str
    metric: str
    comparator: str
    threshold: float
    value: float
    status: str
    run_id: str | None = None
    triggered_at: datetime
    resolved_at: datetime | None = None
    resolved_value: float | None = None
