"""Pipelines: configuration, the per-pipeline item log, checkpoints, dead letters.

Revision ID: 0002_pipelines
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_pipelines"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The configuration is `json`, not `jsonb`: it keeps the user's key order (a map's
    # expression object is the output's field order).
    op.create_table(
        "pipelines",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("org_id", sa.String(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("transforms", sa.JSON(), nullable=False),
        sa.Column("destination", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("committed_offset", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("state", postgresql.JSONB()),
        sa.Column("error", sa.String()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pipelines_org_created", "pipelines", ["org_id", "created_at"])
    op.create_index(
        "ix_pipelines_source_type",
        "pipelines",
        [sa.text("(source->>'type')")],
        postgresql_where=sa.text("status IN ('running', 'paused')"),
    )
    # The offset counter lives in its own row so that ingest (which row-locks it until commit,
    # making commit order equal offset order) never blocks the worker updating `pipelines`.
    op.create_table(
        "pipeline_offsets",
        sa.Column(
            "pipeline_id",
            sa.String(),
            sa.ForeignKey("pipelines.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("last_offset", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "pipeline_items",
        sa.Column(
            "pipeline_id",
            sa.String(),
            sa.ForeignKey("pipelines.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("offset", sa.BigInteger(), primary_key=True),
        sa.Column("org_id", sa.String(), nullable=False),
        # json (text) rather than jsonb: cheaper to append and read back whole, keeps key order.
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column(
            "ingested_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("dedup_key", sa.String()),
    )
    op.create_index(
        "ux_pipeline_items_dedup",
        "pipeline_items",
        ["pipeline_id", "dedup_key"],
        unique=True,
        postgresql_where=sa.text("dedup_key IS NOT NULL"),
    )
    # Chain states too large for workflow history, referenced by id from the workflow state.
    op.create_table(
        "pipeline_chain_states",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column(
            "pipeline_id",
            sa.String(),
            sa.ForeignKey("pipelines.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index(
        "ix_pipeline_chain_states_pipeline", "pipeline_chain_states", ["pipeline_id", "id"]
    )
    op.create_table(
        "pipeline_checkpoints",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "pipeline_id",
            sa.String(),
            sa.ForeignKey("pipelines.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("state", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
    )
    op.create_index(
        "ix_pipeline_checkpoints_pipeline", "pipeline_checkpoints", ["pipeline_id", "created_at"]
    )
    op.create_table(
        "pipeline_dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column(
            "pipeline_id",
            sa.String(),
            sa.ForeignKey("pipelines.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("first_offset", sa.BigInteger(), nullable=False),
        sa.Column("last_offset", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("ingest_ms", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("dedup", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("replayed_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_pipeline_dead_letters_pipeline", "pipeline_dead_letters", ["pipeline_id", "id"]
    )
    # A retried batch writes the same dead letters again; this key makes that a no-op.
    op.create_index(
        "ux_pipeline_dead_letters_dedup",
        "pipeline_dead_letters",
        ["pipeline_id", "dedup"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("pipeline_dead_letters")
    op.drop_table("pipeline_checkpoints")
    op.drop_table("pipeline_chain_states")
    op.drop_table("pipeline_items")
    op.drop_table("pipeline_offsets")
    op.drop_table("pipelines")
