"""Agents, conversations, messages, runs, Command Center alert rules and alerts.

Revision ID: 0004_agents
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_agents"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _org() -> sa.Column:
    return sa.Column("org_id", sa.String(), sa.ForeignKey("organizations.id"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(), primary_key=True),
        _org(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False, server_default=""),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("system_prompt", sa.String(), nullable=False, server_default=""),
        sa.Column("temperature", sa.Float()),
        sa.Column("max_tokens", sa.Integer()),
        sa.Column("tools", postgresql.JSONB(), nullable=False),
        sa.Column("approval_required", postgresql.JSONB(), nullable=False),
        sa.Column("pricing", postgresql.JSONB()),
        sa.Column("base_url", sa.String()),
        sa.Column("api_key", sa.String()),
        sa.Column("provider_options", postgresql.JSONB(), nullable=False),
        sa.Column("approval_timeout_ms", sa.Integer()),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_agents_org_id", "agents", ["org_id"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(), primary_key=True),
        _org(),
        sa.Column("agent_id", sa.String(), sa.ForeignKey("agents.id"), nullable=False),
        sa.Column("title", sa.String()),
        sa.Column("multitask", sa.String(), nullable=False),
        sa.Column("active_run_id", sa.String()),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_conversations_org_id", "conversations", ["org_id"])
    op.create_index("ix_conversations_agent_id", "conversations", ["agent_id"])
    op.create_table(
        "messages",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("id", sa.String(), nullable=False, unique=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String()),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("content", sa.String()),
        sa.Column("tool_calls", postgresql.JSONB(), nullable=False),
        sa.Column("tool_call_id", sa.String()),
        sa.Column("dedup_key", sa.String(), unique=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_messages_conversation_seq", "messages", ["conversation_id", "seq"])
    op.create_index("ix_messages_org_id", "messages", ["org_id"])
    op.create_index("ix_messages_run_id", "messages", ["run_id"])
    op.create_table(
        "runs",
        sa.Column("id", sa.String(), primary_key=True),
        _org(),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("agent_name", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("message_id", sa.String()),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cost", sa.Float(), nullable=False, server_default="0"),
        sa.Column("model_calls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tool_calls", postgresql.JSONB(), nullable=False),
        sa.Column("result", sa.String()),
        sa.Column("error", sa.String()),
        sa.Column("error_code", sa.String()),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("completed_at", _TS),
    )
    op.create_index("ix_runs_org_created", "runs", ["org_id", "created_at"])
    op.create_index("ix_runs_conversation", "runs", ["conversation_id", "created_at"])
    op.create_index("ix_runs_agent_id", "runs", ["agent_id"])
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(), primary_key=True),
        _org(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("comparator", sa.String(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("window_ms", sa.BigInteger()),
        sa.Column("agent_ids", postgresql.JSONB()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("active_alert_id", sa.String()),
        sa.Column("last_value", sa.Float()),
        sa.Column("last_evaluated_at", _TS),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_alert_rules_org_id", "alert_rules", ["org_id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(), primary_key=True),
        _org(),
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("rule_name", sa.String(), nullable=False),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("comparator", sa.String(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("run_id", sa.String()),
        sa.Column("triggered_at", _TS, nullable=False),
        sa.Column("resolved_at", _TS),
        sa.Column("resolved_value", sa.Float()),
    )
    op.create_index("ix_alerts_org_triggered", "alerts", ["org_id", "triggered_at"])
    op.create_index("ix_alerts_rule_id", "alerts", ["rule_id"])


def downgrade() -> None:
    for table in ("alerts", "alert_rules", "runs", "messages", "conversations", "agents"):
        op.drop_table(table)
