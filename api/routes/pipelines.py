"""Data streaming pipelines: `/api/streaming/...` (docs/pipelines.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import func
from sqlmodel import col, select
from sse_starlette import EventSourceResponse

from api.deps import (
    MAX_BIGINT,
    CurrentPrincipal,
    IdempotencyKeyHeader,
    LastEventIdDep,
    PageOffset,
    ServicesDep,
    SessionDep,
    StreamerDep,
    StreamPrincipal,
    TemporalDep,
    WritePrincipal,
    idempotency_key,
)
from api.input_guard import parse_items_body
from deeployd import temporal
from deeployd.eventlog import EventFilter
from deeployd.idempotency import IdempotencyKey
from deeployd.ids import new_id
from deeployd.models import utcnow
from deeployd.models.pipeline import (
    CheckpointPublic,
    DeadLetterPublic,
    Pipeline,
    PipelineChainState,
    PipelineCheckpoint,
    PipelineCreate,
    PipelineDeadLetter,
    PipelineOffset,
    PipelinePublic,
    PipelineStatus,
    PipelineUpdate,
)
from deeployd.pipelines import control
from deeployd.pipelines.config import validate_pipeline_body
from deeployd.pipelines.errors import BackpressureExceeded, PipelineNotFound
from deeployd.pipelines.ingest import (
    DEFAULT_MAX_PENDING,
    MAX_BATCH_ITEMS,
    ingest_items,
    ingest_json_array,
    latest_offset,
)
from deeployd.pipelines.runtime import INLINE_STATE_BYTES, PipelineState
from deeployd.pipelines.sources import lifecycle as source_hooks
from deeployd.services import Services

router = APIRouter(prefix="/api/streaming", tags=["pipelines"])

MAX_BODY_BYTES = 32 * 1024 * 1024
ACTIVE = (PipelineStatus.running, PipelineStatus.paused)


def _public(row: Pipeline, services: Services) -> PipelinePublic:
    wid = control.workflow_id(row.id)
    return PipelinePublic.model_validate(
        {
            **row.model_dump(),
            "workflow_id": wid,
            "temporal_url": temporal.workflow_url(services.settings, wid),
        }
    )


async def _get(session: SessionDep, org_id: str, pipeline_id: str) -> Pipeline:
    row = (
        await session.exec(
            select(Pipeline).where(Pipeline.id == pipeline_id, Pipeline.org_id == org_id)
        )
    ).first()
    if row is None:
        raise HTTPException(404, "pipeline not found")
    return row


def _conflict(row: Pipeline, action: str) -> HTTPException:
    return HTTPException(409, f"cannot {action} a pipeline that is {row.status}")


def _body_dict(body: PipelineCreate | PipelineUpdate) -> dict[str, Any]:
    return body.model_dump(mode="json", by_alias=True)


async def check_pipeline_body(services: Services, org_id: str, data: dict[str, Any]) -> None:
    """Every check a pipeline body must pass before it is stored (422 naming the path)."""
    await validate_pipeline_body(
        data, org_id, services.db, allow_private_urls=services.settings.allow_private_urls
    )
    await source_hooks.check_source(services, org_id, data["source"])
    await source_hooks.check_destination(services, org_id, data["destination"])


# --- CRUD ---------------------------------------------------------------------------------


@router.post(
    "/pipelines", status_code=201, response_model=PipelinePublic, response_model_by_alias=True
)
async def create_pipeline(
    body: PipelineCreate, principal: WritePrincipal, session: SessionDep, services: ServicesDep
) -> PipelinePublic:
    """Create a pipeline (status `created`). Every config error is a 422 naming its path."""
    data = _body_dict(body)
    await check_pipeline_body(services, principal.org_id, data)
    row = Pipeline(
        id=new_id("pl"),
        org_id=principal.org_id,
        name=body.name,
        source=data["source"],
        transforms=data["transforms"],
        destination=data["destination"],
        options=data["options"],
        status=PipelineStatus.created,
    )
    session.add(row)
    await session.flush()  # the pipeline row first: the counter row references it
    session.add(PipelineOffset(pipeline_id=row.id))
    await session.commit()
    await session.refresh(row)
    await source_hooks.on_pipeline_created(services, row.org_id, row.id, row.source)
    return _public(row, services)


@router.get("/pipelines")
async def list_pipelines(
    principal: CurrentPrincipal,
    session: SessionDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: PageOffset = 0,
    status_filter: Annotated[PipelineStatus | None, Query(alias="status")] = None,
) -> dict[str, Any]:
    where = [Pipeline.org_id == principal.org_id]
    if status_filter is not None:
        where.append(Pipeline.status == status_filter)
    total = (await session.exec(select(func.count()).select_from(Pipeline).where(*where))).one()
    rows = await session.exec(
        select(Pipeline)
        .where(*where)
        .order_by(col(Pipeline.created_at).desc(), col(Pipeline.id))
        .offset(offset)
        .limit(limit)
    )
    return {
        "items": [_public(r, services).model_dump(mode="json", by_alias=True) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/pipelines/{pipeline_id}", response_model=PipelinePublic, response_model_by_alias=True)
async def get_pipeline(
    pipeline_id: str, principal: CurrentPrincipal, session: SessionDep, services: ServicesDep
) -> PipelinePublic:
    return _public(await _get(session, principal.org_id, pipeline_id), services)


@router.put("/pipelines/{pipeline_id}", response_model=PipelinePublic, response_model_by_alias=True)
async def update_pipeline(
    pipeline_id: str,
    body: PipelineUpdate,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
    client: TemporalDep,
) -> PipelinePublic:
    """Replace the configuration. A running pipeline applies it from its current checkpoint
    (the next batch); stateful transforms start with fresh state when the chain changes."""
    row = await _get(session, principal.org_id, pipeline_id)
    data = _body_dict(body)
    await check_pipeline_body(services, principal.org_id, data)
    old_source = dict(row.source)
    row.name = body.name
    row.source, row.transforms = data["source"], data["transforms"]
    row.destination, row.options = data["destination"], data["options"]
    row.config_version += 1
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    await source_hooks.on_pipeline_updated(
        services, row.org_id, row.id, old_source, row.source, row.status
    )
    if row.status in ACTIVE:
        try:
            await control.handle(client, row.id).signal("config_updated")
        except Exception:  # the activity reads the new config anyway; the signal only wakes it
            pass
    await services.publisher.publish(
        row.org_id,
        control.stream_key(row.id),
        "config_updated",
        {"pipelineId": row.id, "configVersion": row.config_version},
    )
    return _public(row, services)


@router.delete("/pipelines/{pipeline_id}", status_code=204)
async def delete_pipeline(
    pipeline_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    client: TemporalDep,
    services: ServicesDep,
) -> Response:
    """Delete the pipeline, its item log, checkpoints and dead letters; a live workflow is
    terminated (deleting is not stopping: pending window state is discarded)."""
    row = await _get(session, principal.org_id, pipeline_id)
    if await control.workflow_running(client, row.id):
        await control.handle(client, row.id).terminate("pipeline deleted")
    await source_hooks.on_pipeline_deleted(services, row.org_id, row.id, row.source)
    await session.delete(row)
    await session.commit()
    return Response(status_code=204)


# --- lifecycle ----------------------------------------------------------------------------


@router.post(
    "/pipelines/{pipeline_id}/start",
    response_model=PipelinePublic,
    response_model_by_alias=True,
)
async def start_pipeline(
    pipeline_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
    client: TemporalDep,
) -> PipelinePublic:
    """Start processing from the saved state (committed offset + chain state)."""
    row = await _get(session, principal.org_id, pipeline_id)
    if row.status == PipelineStatus.paused:
        raise HTTPException(409, "pipeline is paused; resume it instead")
    if row.status != PipelineStatus.running or not await control.workflow_running(client, row.id):
        await source_hooks.on_pipeline_started(services, row.org_id, row.id, row.source)
        previous = PipelineStatus(row.status)
        row.error = None
        # Status first, so the stream reads `status: running` before the first `metrics`.
        await control.set_status(services, row, PipelineStatus.running, session)
        try:
            await control.start_workflow(client, services, row)
        except BaseException:
            await control.set_status(services, row, previous, session)
            raise
    return _public(row, services)


@router.post(
    "/pipelines/{pipeline_id}/pause", response_model=PipelinePublic, response_model_by_alias=True
)
async def pause_pipeline(
    pipeline_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
    client: TemporalDep,
) -> PipelinePublic:
    """Stop delivering after the batch in flight; items keep being accepted."""
    row = await _get(session, principal.org_id, pipeline_id)
    if row.status == PipelineStatus.paused:
        return _public(row, services)
    if row.status != PipelineStatus.running:
        raise _conflict(row, "pause")
    # The row first: a batch waiting for items re-checks it, so nothing ingested after this
    # response is delivered until resume.
    await control.set_status(services, row, PipelineStatus.paused, session)
    await control.handle(client, row.id).signal("pause")
    await source_hooks.on_pipeline_paused(services, row.org_id, row.id, row.source)
    return _public(row, services)


@router.post(
    "/pipelines/{pipeline_id}/resume", response_model=PipelinePublic, response_model_by_alias=True
)
async def resume_pipeline(
    pipeline_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
    client: TemporalDep,
) -> PipelinePublic:
    row = await _get(session, principal.org_id, pipeline_id)
    if row.status == PipelineStatus.running:
        return _public(row, services)
    if row.status != PipelineStatus.paused:
        raise _conflict(row, "resume")
    await control.handle(client, row.id).signal("resume")
    await source_hooks.on_pipeline_resumed(services, row.org_id, row.id, row.source)
    await control.set_status(services, row, PipelineStatus.running, session)
    return _public(row, services)


@router.post(
    "/pipelines/{pipeline_id}/stop", response_model=PipelinePublic, response_model_by_alias=True
)
async def stop_pipeline(
    pipeline_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
    client: TemporalDep,
) -> PipelinePublic:
    """Flush what the transforms hold (open windows, partial batches), deliver it, save the
    state and complete the workflow. Waits up to 20 s for that to finish."""
    row = await _get(session, principal.org_id, pipeline_id)
    if row.status == PipelineStatus.stopped:
        return _public(row, services)
    if row.status not in (*ACTIVE, PipelineStatus.failed):
        raise _conflict(row, "stop")
    if await control.workflow_running(client, row.id):
        await control.handle(client, row.id).signal("stop")
        if not await control.wait_finished(client, row.id):
            # Still flushing: the workflow records `stopped` itself when it completes.
            await session.refresh(row)
            return _public(row, services)
    await session.refresh(row)  # the workflow saved its final state (and status)
    await control.set_status(services, row, PipelineStatus.stopped, session)
    await source_hooks.on_pipeline_stopped(services, row.org_id, row.id, row.source)
    return _public(row, services)


# --- ingest -------------------------------------------------------------------------------


async def read_body(request: Request) -> bytes:
    """The request body, refusing (413) anything over MAX_BODY_BYTES without buffering it."""
    too_large = HTTPException(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request) -> Any:
    raw = await read_body(request)
    request.state.raw_body = raw
    return parse_items_body(raw)


async def ingest_response(
    services: Services,
    org_id: str,
    pipeline_id: str,
    items: list[dict[str, Any]],
    *,
    raw: bytes | None = None,
    idempotency: IdempotencyKey | None = None,
    **kw: Any,
) -> JSONResponse:
    try:
        if raw is not None:
            text = raw.decode()
            offsets = await ingest_json_array(
                services, org_id, pipeline_id, text, len(items), idempotency=idempotency
            )
        elif idempotency is not None:
            offsets = await ingest_items(
                services, org_id, pipeline_id, items, idempotency=idempotency
            )
        else:
            offsets = await ingest_items(services, org_id, pipeline_id, items, **kw)
    except PipelineNotFound:
        raise HTTPException(404, "pipeline not found") from None
    except BackpressureExceeded as exc:
        return JSONResponse(
            status_code=429,
            content={"detail": str(exc), "pending": exc.pending, "maxPending": exc.max_pending},
            headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        )
    return JSONResponse(
        status_code=202,
        content={
            "accepted": len(offsets),
            "offsets": offsets,
            "firstOffset": offsets[0] if offsets else None,
            "lastOffset": offsets[-1] if offsets else None,
        },
    )


@router.post("/pipelines/{pipeline_id}/process", status_code=202)
async def process_item(
    pipeline_id: str,
    request: Request,
    principal: WritePrincipal,
    services: ServicesDep,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Push one item (a JSON object). 202 once it is durable, with its offset."""
    item = await _json_body(request)
    if not isinstance(item, dict):
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "an item must be a JSON object", "type": "value_error"}]
        )
    idempotency = idempotency_key(request, principal, key, request.state.raw_body)
    return await ingest_response(
        services, principal.org_id, pipeline_id, [item], idempotency=idempotency
    )


@router.post("/pipelines/{pipeline_id}/batch", status_code=202)
async def process_batch(
    pipeline_id: str,
    request: Request,
    principal: WritePrincipal,
    services: ServicesDep,
    key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Push up to 10,000 items: a JSON array of objects, or `{"items": [...]}`. All or none
    are accepted (one statement); 429 with Retry-After when the pipeline has too much pending."""
    body = await _json_body(request)
    items = body.get("items") if isinstance(body, dict) else body
    where: tuple[str | int, ...] = ("body", "items") if isinstance(body, dict) else ("body",)
    if not isinstance(items, list):
        raise RequestValidationError(
            [{"loc": where, "msg": "must be an array of items", "type": "value_error"}]
        )
    if not items or len(items) > MAX_BATCH_ITEMS:
        raise RequestValidationError(
            [
                {
                    "loc": where,
                    "msg": f"must hold 1 to {MAX_BATCH_ITEMS} items",
                    "type": "value_error",
                }
            ]
        )
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestValidationError(
                [
                    {
                        "loc": (*where, index),
                        "msg": "an item must be a JSON object",
                        "type": "value_error",
                    }
                ]
            )
    idempotency = idempotency_key(request, principal, key, request.state.raw_body)
    if isinstance(body, list):  # pass the validated array text through as it is
        return await ingest_response(
            services,
            principal.org_id,
            pipeline_id,
            items,
            raw=request.state.raw_body,
            idempotency=idempotency,
        )
    return await ingest_response(
        services, principal.org_id, pipeline_id, items, idempotency=idempotency
    )


# --- observability ------------------------------------------------------------------------


async def _metrics(row: Pipeline, services: Services) -> dict[str, Any]:
    client = services.temporal
    live = None
    if row.status in ACTIVE and client is not None:
        live = await control.query_metrics(client, row.id)
    metrics = live if live is not None else control.stored_metrics(row)
    max_pending = int((row.options or {}).get("maxPending", DEFAULT_MAX_PENDING))
    last_offset = await latest_offset(services, row.id)
    pending = max(0, last_offset - row.committed_offset)
    metrics["pending"] = pending
    metrics["maxPending"] = max_pending
    metrics["backpressure"] = round(min(1.0, pending / max_pending), 4)
    metrics["latestOffset"] = last_offset
    return metrics


async def _last_checkpoint(session: SessionDep, row: Pipeline) -> dict[str, Any] | None:
    ckpt = (
        await session.exec(
            select(PipelineCheckpoint)
            .where(PipelineCheckpoint.pipeline_id == row.id)
            .order_by(col(PipelineCheckpoint.created_at).desc())
            .limit(1)
        )
    ).first()
    if ckpt is None:
        return None
    return {"id": ckpt.id, "offset": ckpt.offset, "createdAt": ckpt.created_at.isoformat()}


@router.get("/pipelines/{pipeline_id}/metrics")
async def pipeline_metrics(
    pipeline_id: str, principal: CurrentPrincipal, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    """itemsProcessed/Failed/Filtered, throughput (items/s over the last minute), latency
    (ingest->delivered ms), backpressure (pending / maxPending), pending, lastCheckpoint."""
    row = await _get(session, principal.org_id, pipeline_id)
    metrics = await _metrics(row, services)
    metrics["lastCheckpoint"] = await _last_checkpoint(session, row)
    return metrics


@router.get("/pipelines/{pipeline_id}/health")
async def pipeline_health(
    pipeline_id: str, principal: CurrentPrincipal, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    row = await _get(session, principal.org_id, pipeline_id)
    client = services.temporal
    metrics = await _metrics(row, services)
    unhealthy: list[str] = []
    degraded: list[str] = []
    if row.status == PipelineStatus.failed:
        unhealthy.append(f"pipeline failed: {row.error or 'unknown error'}")
    if row.status in ACTIVE and (
        client is None or not await control.workflow_running(client, row.id)
    ):
        unhealthy.append("the pipeline's workflow is not running")
    if metrics["backpressure"] >= 1:
        unhealthy.append("backpressure: pending items reached maxPending, ingest is refused")
    elif metrics["backpressure"] >= 0.8:
        degraded.append(
            f"backpressure {metrics['backpressure']:.2f}: the pipeline is falling behind"
        )
    last_error_at = metrics.get("lastErrorAt")
    now_ms = utcnow().timestamp() * 1000
    if last_error_at and now_ms - last_error_at < 5 * 60_000:
        degraded.append(f"delivery failing: {metrics.get('lastError')}")
    waiting = (
        await session.exec(
            select(func.count())
            .select_from(PipelineDeadLetter)
            .where(
                PipelineDeadLetter.pipeline_id == row.id,
                col(PipelineDeadLetter.replayed_at).is_(None),
            )
        )
    ).one()
    if waiting:
        degraded.append(f"{waiting} dead letter(s) waiting for replay")
    if row.status == PipelineStatus.paused:
        degraded.append("paused: items are accepted but not delivered")
    verdict = "unhealthy" if unhealthy else "degraded" if degraded else "healthy"
    return {
        "status": verdict,
        "reasons": unhealthy + degraded,
        "pipelineStatus": row.status,
        "backpressure": metrics["backpressure"],
        "pending": metrics["pending"],
        "checkedAt": utcnow().isoformat(),
    }


@router.get("/stats")
async def streaming_stats(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Organisation-wide: pipelines by status, items accepted/processed/failed, pending."""
    async with services.db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status, count(*), coalesce(sum(o.last_offset), 0), "
            "coalesce(sum(o.last_offset - committed_offset), 0), "
            "coalesce(sum((state->'counters'->>'processed')::bigint), 0), "
            "coalesce(sum((state->'counters'->>'failed')::bigint), 0), "
            "coalesce(sum((state->'counters'->>'filtered')::bigint), 0), "
            "coalesce(sum((state->'counters'->>'delivered')::bigint), 0) "
            "FROM pipelines JOIN pipeline_offsets o ON o.pipeline_id = pipelines.id "
            "WHERE org_id = %s GROUP BY status",
            (principal.org_id,),
        )
        rows = await cursor.fetchall()
        cursor = await conn.execute(
            "SELECT count(*) FROM pipeline_dead_letters WHERE org_id = %s AND replayed_at IS NULL",
            (principal.org_id,),
        )
        dead = (await cursor.fetchone() or (0,))[0]
    by_status = {s.value: 0 for s in PipelineStatus}
    totals = [0] * 6
    for status_name, count, *sums in rows:
        by_status[status_name] = count
        totals = [a + int(b) for a, b in zip(totals, sums, strict=True)]
    return {
        "pipelines": sum(by_status.values()),
        "byStatus": by_status,
        "itemsIngested": totals[0],
        "pending": totals[1],
        "itemsProcessed": totals[2],
        "itemsFailed": totals[3],
        "itemsFiltered": totals[4],
        "itemsDelivered": totals[5],
        "deadLetters": dead,
    }


@router.get("/pipelines/{pipeline_id}/stream", summary="SSE: status, metrics, delivery failures")
async def stream_pipeline(
    pipeline_id: str,
    principal: StreamPrincipal,
    streamer: StreamerDep,
    resume: LastEventIdDep,
    session: SessionDep,
) -> EventSourceResponse:
    """Live events of one pipeline: `status`, `metrics` (once a second while running),
    `delivery_failed`, `config_updated`, `checkpoint`. Resumable by Last-Event-ID."""
    row = await _get(session, principal.org_id, pipeline_id)
    flt = EventFilter(principal.org_id, frozenset({control.stream_key(row.id)}))
    return streamer.response(flt, resume_after=resume)


# --- checkpoints --------------------------------------------------------------------------


async def _inline_state(session: SessionDep, state: PipelineState) -> PipelineState:
    """A checkpoint must be self-contained: bring a by-reference chain state inline."""
    if state.chain_state_ref is None:
        return state
    big = await session.get(PipelineChainState, state.chain_state_ref)
    if big is None:
        raise HTTPException(409, "the pipeline's saved state is incomplete; start it first")
    return state.model_copy(update={"chain_state": big.state, "chain_state_ref": None})


@router.post("/pipelines/{pipeline_id}/checkpoints", status_code=201)
async def create_checkpoint(
    pipeline_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
    client: TemporalDep,
) -> dict[str, Any]:
    """Snapshot the workflow's state (committed offset + chain state); returns its id."""
    row = await _get(session, principal.org_id, pipeline_id)
    result: dict[str, Any] | None = None
    if row.status in ACTIVE and await control.workflow_running(client, row.id):
        result = await control.handle(client, row.id).execute_update("create_checkpoint")
    else:
        state = await _inline_state(session, control.saved_state(row))
        ckpt = PipelineCheckpoint(
            id=new_id("ckpt"),
            org_id=row.org_id,
            pipeline_id=row.id,
            offset=state.committed_offset,
            state=state.model_dump(mode="json"),
        )
        session.add(ckpt)
        await session.commit()
        result = {"id": ckpt.id, "offset": ckpt.offset}
    assert result is not None
    await services.publisher.publish(
        row.org_id, control.stream_key(row.id), "checkpoint", {"pipelineId": row.id, **result}
    )
    return result


@router.get("/pipelines/{pipeline_id}/checkpoints")
async def list_checkpoints(
    pipeline_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    row = await _get(session, principal.org_id, pipeline_id)
    rows = await session.exec(
        select(PipelineCheckpoint)
        .where(PipelineCheckpoint.pipeline_id == row.id, PipelineCheckpoint.org_id == row.org_id)
        .order_by(col(PipelineCheckpoint.created_at).desc())
        .limit(limit)
    )
    items = [
        CheckpointPublic(
            id=c.id,
            pipeline_id=c.pipeline_id,
            offset=c.offset,
            items_processed=int(c.state.get("counters", {}).get("processed", 0)),
            created_at=c.created_at,
        ).model_dump(mode="json", by_alias=True)
        for c in rows
    ]
    return {"items": items}


@router.post("/pipelines/{pipeline_id}/checkpoints/{checkpoint_id}/restore")
async def restore_checkpoint(
    pipeline_id: str,
    checkpoint_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    services: ServicesDep,
    client: TemporalDep,
) -> dict[str, Any]:
    """Reprocess from the checkpoint's offset with its chain state. Counters stay cumulative."""
    row = await _get(session, principal.org_id, pipeline_id)
    ckpt = (
        await session.exec(
            select(PipelineCheckpoint).where(
                PipelineCheckpoint.id == checkpoint_id,
                PipelineCheckpoint.pipeline_id == row.id,
                PipelineCheckpoint.org_id == row.org_id,
            )
        )
    ).first()
    if ckpt is None:
        raise HTTPException(404, "checkpoint not found")
    restored = PipelineState.model_validate(ckpt.state)
    restored.counters = control.saved_state(row).counters
    if restored.chain_state is not None:
        text = json.dumps(restored.chain_state, separators=(",", ":"))
        if len(text) > INLINE_STATE_BYTES:  # keep the update (and history) small
            big = PipelineChainState(
                pipeline_id=row.id, org_id=row.org_id, state=restored.chain_state
            )
            session.add(big)
            await session.flush()
            restored.chain_state, restored.chain_state_ref = None, big.id
    if row.status in ACTIVE and await control.workflow_running(client, row.id):
        await control.handle(client, row.id).execute_update("restore", restored)
    row.state = restored.model_dump(mode="json")
    row.committed_offset = restored.committed_offset
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    await services.publisher.publish(
        row.org_id,
        control.stream_key(row.id),
        "restored",
        {"pipelineId": row.id, "checkpointId": ckpt.id, "offset": ckpt.offset},
    )
    return {"checkpointId": ckpt.id, "offset": ckpt.offset, "status": row.status}


# --- dead letters -------------------------------------------------------------------------


@router.get("/pipelines/{pipeline_id}/dead-letters")
async def list_dead_letters(
    pipeline_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="list ids after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_replayed: Annotated[bool, Query(alias="includeReplayed")] = False,
) -> dict[str, Any]:
    row = await _get(session, principal.org_id, pipeline_id)
    query = select(PipelineDeadLetter).where(
        PipelineDeadLetter.pipeline_id == row.id,
        PipelineDeadLetter.org_id == row.org_id,
        col(PipelineDeadLetter.id) > after,
    )
    if not include_replayed:
        query = query.where(col(PipelineDeadLetter.replayed_at).is_(None))
    rows = list(await session.exec(query.order_by(col(PipelineDeadLetter.id)).limit(limit)))
    items = []
    for r in rows:
        item = DeadLetterPublic.model_validate(r.model_dump()).model_dump(
            mode="json", by_alias=True, exclude={"value"}
        )
        item["value"] = r.value  # as stored: may hold a lone surrogate (escaped below)
        items.append(item)
    body = {"items": items, "nextAfter": rows[-1].id if rows else after}
    # Dead letters are often the items nothing else could take; ASCII JSON keeps every one of
    # them readable (a lone surrogate cannot be encoded as UTF-8, its \u escape can).
    return Response(json.dumps(body, ensure_ascii=True), media_type="application/json")  # type: ignore[return-value]


@router.post("/pipelines/{pipeline_id}/dead-letters/replay")
async def replay_dead_letters(
    pipeline_id: str,
    principal: WritePrincipal,
    session: SessionDep,
    client: TemporalDep,
) -> dict[str, Any]:
    """Redeliver delivery-stage dead letters as they are and re-ingest transform-stage ones.
    Runs in the pipeline's workflow (secrets are resolved in the worker), so it must be
    running or paused."""
    row = await _get(session, principal.org_id, pipeline_id)
    if row.status not in ACTIVE or not await control.workflow_running(client, row.id):
        raise HTTPException(409, "start the pipeline to replay its dead letters")
    result = await control.handle(client, row.id).execute_update("replay_dead_letters")
    data = result if isinstance(result, dict) else result.model_dump()
    return {
        "redelivered": data.get("redelivered", 0),
        "reingested": data.get("reingested", 0),
        "failed": data.get("failed", 0),
        "error": data.get("error"),
    }
