"""SQL of the pipeline tables the API reads and writes: one home per table operation.

Rows go through a SQLModel session (the caller's unit of work); organisation-wide counts and the
webhook lookup use the psycopg pool. Every statement filters by `org_id`, except the webhook
lookup, whose caller is anonymous and learns the organisation from the pipeline it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deeployd import db
from deeployd.models.pipeline import (
    Pipeline,
    PipelineChainState,
    PipelineCheckpoint,
    PipelineDeadLetter,
    PipelineOffset,
    PipelineStatus,
)

# --- pipelines ----------------------------------------------------------------------------


async def get_pipeline(session: AsyncSession, org_id: str, pipeline_id: str) -> Pipeline | None:
    return (
        await session.exec(
            select(Pipeline).where(Pipeline.id == pipeline_id, Pipeline.org_id == org_id)
        )
    ).first()


async def insert_pipeline(session: AsyncSession, row: Pipeline) -> None:
    """The pipeline and its offset counter, in one transaction."""
    session.add(row)
    await session.flush()  # the pipeline row first: the counter row references it
    session.add(PipelineOffset(pipeline_id=row.id))
    await save(session, row)


save = db.save_row  # any pipeline-table row


async def reload(session: AsyncSession, row: Pipeline) -> None:
    """Read what others (the workflow) wrote since the row was loaded."""
    await session.refresh(row)


async def delete_pipeline(session: AsyncSession, row: Pipeline) -> None:
    """The row and, by cascade, its item log, checkpoints and dead letters."""
    await session.delete(row)
    await session.commit()


async def list_pipelines(
    session: AsyncSession, org_id: str, status: PipelineStatus | None, limit: int, offset: int
) -> tuple[int, list[Pipeline]]:
    """(total matching, one page newest first)."""
    where = [Pipeline.org_id == org_id]
    if status is not None:
        where.append(Pipeline.status == status)
    total = (await session.exec(select(func.count()).select_from(Pipeline).where(*where))).one()
    rows = await session.exec(
        select(Pipeline)
        .where(*where)
        .order_by(col(Pipeline.created_at).desc(), col(Pipeline.id))
        .offset(offset)
        .limit(limit)
    )
    return total, list(rows)


@dataclass(frozen=True)
class WebhookTarget:
    org_id: str
    source: dict[str, Any]


async def webhook_target(pool: AsyncConnectionPool, pipeline_id: str) -> WebhookTarget | None:
    """The pipeline a webhook call names, when its source is a webhook."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT org_id, source FROM pipelines WHERE id = %s", (pipeline_id,)
        )
        row = await cursor.fetchone()
    if row is None or row[1].get("type") != "webhook":
        return None
    return WebhookTarget(org_id=row[0], source=row[1])


@dataclass(frozen=True)
class StatusTotals:
    """Sums over the organisation's pipelines of one status."""

    status: str
    pipelines: int
    ingested: int
    pending: int
    processed: int
    failed: int
    filtered: int
    delivered: int


async def org_totals(pool: AsyncConnectionPool, org_id: str) -> list[StatusTotals]:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status, count(*), coalesce(sum(o.last_offset), 0), "
            "coalesce(sum(o.last_offset - committed_offset), 0), "
            "coalesce(sum((state->'counters'->>'processed')::bigint), 0), "
            "coalesce(sum((state->'counters'->>'failed')::bigint), 0), "
            "coalesce(sum((state->'counters'->>'filtered')::bigint), 0), "
            "coalesce(sum((state->'counters'->>'delivered')::bigint), 0) "
            "FROM pipelines JOIN pipeline_offsets o ON o.pipeline_id = pipelines.id "
            "WHERE org_id = %s GROUP BY status",
            (org_id,),
        )
        rows = await cursor.fetchall()
    return [StatusTotals(r[0], *(int(v) for v in r[1:])) for r in rows]


# --- checkpoints and chain state ----------------------------------------------------------


async def latest_checkpoint(session: AsyncSession, pipeline_id: str) -> PipelineCheckpoint | None:
    return (
        await session.exec(
            select(PipelineCheckpoint)
            .where(PipelineCheckpoint.pipeline_id == pipeline_id)
            .order_by(col(PipelineCheckpoint.created_at).desc())
            .limit(1)
        )
    ).first()


async def list_checkpoints(
    session: AsyncSession, org_id: str, pipeline_id: str, limit: int
) -> list[PipelineCheckpoint]:
    rows = await session.exec(
        select(PipelineCheckpoint)
        .where(PipelineCheckpoint.pipeline_id == pipeline_id, PipelineCheckpoint.org_id == org_id)
        .order_by(col(PipelineCheckpoint.created_at).desc())
        .limit(limit)
    )
    return list(rows)


async def get_checkpoint(
    session: AsyncSession, org_id: str, pipeline_id: str, checkpoint_id: str
) -> PipelineCheckpoint | None:
    return (
        await session.exec(
            select(PipelineCheckpoint).where(
                PipelineCheckpoint.id == checkpoint_id,
                PipelineCheckpoint.pipeline_id == pipeline_id,
                PipelineCheckpoint.org_id == org_id,
            )
        )
    ).first()


async def get_chain_state(session: AsyncSession, ref: int) -> PipelineChainState | None:
    return await session.get(PipelineChainState, ref)


async def add_chain_state(session: AsyncSession, org_id: str, pipeline_id: str, state: Any) -> int:
    """Store a large chain state by reference (in the caller's transaction); returns its id."""
    big = PipelineChainState(pipeline_id=pipeline_id, org_id=org_id, state=state)
    session.add(big)
    await session.flush()
    assert big.id is not None
    return big.id


# --- dead letters -------------------------------------------------------------------------


async def count_waiting_dead_letters(session: AsyncSession, pipeline_id: str) -> int:
    return (
        await session.exec(
            select(func.count())
            .select_from(PipelineDeadLetter)
            .where(
                PipelineDeadLetter.pipeline_id == pipeline_id,
                col(PipelineDeadLetter.replayed_at).is_(None),
            )
        )
    ).one()


async def count_org_waiting_dead_letters(pool: AsyncConnectionPool, org_id: str) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pipeline_dead_letters WHERE org_id = %s AND replayed_at IS NULL",
            (org_id,),
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def list_dead_letters(
    session: AsyncSession,
    org_id: str,
    pipeline_id: str,
    *,
    after: int,
    limit: int,
    include_replayed: bool,
) -> list[PipelineDeadLetter]:
    query = select(PipelineDeadLetter).where(
        PipelineDeadLetter.pipeline_id == pipeline_id,
        PipelineDeadLetter.org_id == org_id,
        col(PipelineDeadLetter.id) > after,
    )
    if not include_replayed:
        query = query.where(col(PipelineDeadLetter.replayed_at).is_(None))
    return list(await session.exec(query.order_by(col(PipelineDeadLetter.id)).limit(limit)))
