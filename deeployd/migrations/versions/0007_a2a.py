"""A2A tasks and their push-notification configs.

Revision ID: 0007_a2a
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_a2a"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "a2a_tasks",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("org_id", sa.String(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("context_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String()),
        sa.Column("conversation_id", sa.String()),
        sa.Column("status_message", postgresql.JSONB()),
        sa.Column("history", postgresql.JSONB(), nullable=False),
        sa.Column("artifacts", postgresql.JSONB(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(), nullable=False),
        sa.Column("last_input", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_a2a_tasks_org_created", "a2a_tasks", ["org_id", "created_at"])
    op.create_index("ix_a2a_tasks_org_context", "a2a_tasks", ["org_id", "context_id"])
    op.create_index("ix_a2a_tasks_run", "a2a_tasks", ["run_id"])
    op.create_table(
        "a2a_push_configs",
        sa.Column("task_id", sa.String(), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("token", sa.String()),
        sa.Column("authentication", postgresql.JSONB()),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("task_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("a2a_push_configs")
    op.drop_table("a2a_tasks")
