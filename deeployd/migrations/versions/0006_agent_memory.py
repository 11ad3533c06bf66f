"""Agent memory: what `memory_write` stores per conversation, for `memory_search`.

Revision ID: 0006_agent_memory
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_agent_memory"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_memories",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("org_id", sa.String(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index(
        "ix_agent_memories_org_conv", "agent_memories", ["org_id", "conversation_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("agent_memories")
