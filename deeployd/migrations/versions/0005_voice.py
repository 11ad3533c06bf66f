"""Voice: per-organisation metering of synthesised characters.

Revision ID: 0005_voice
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_voice"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voice_usage",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("org_id", sa.String(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("run_id", sa.String()),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("voice", sa.String(), nullable=False),
        sa.Column("format", sa.String(), nullable=False),
        sa.Column("characters", sa.Integer(), nullable=False),
        sa.Column("requested_characters", sa.Integer(), nullable=False),
        sa.Column("audio_ms", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_voice_usage_org_created", "voice_usage", ["org_id", "created_at"])


def downgrade() -> None:
    op.drop_table("voice_usage")
