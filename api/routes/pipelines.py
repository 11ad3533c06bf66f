"""Data streaming pipelines: `/api/streaming/...` (docs/pipelines.md)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from temporalio.client import Client as TemporalClient

from api.deps import (
    MAX_BIGINT,
    CurrentPrincipal,
    IdempotencyKeyHeader,
    LastEventIdDep,
    PageOffset,
    ServicesDep,
    StreamerDep,
    StreamPrincipal,
    TemporalDep,
    WritePrincipal,
    idempotency_key,
)
from api.input_guard import parse_items_body
from deeployd.eventlog import EventFilter
from deeployd.models.pipeline import (
    Pipeline,
    PipelineCreate,
    PipelinePublic,
    PipelineStatus,
    PipelineUpdate,
)
from deeployd.pipelines import control, service
from deeployd.pipelines.errors import BackpressureExceeded
from deeployd.services import Services

router = APIRouter(prefix="/api/streaming", tags=["pipelines"])

MAX_BODY_BYTES = 32 * 1024 * 1024

# --- CRUD ---------------------------------------------------------------------------------


@router.post(
    "/pipelines", status_code=201, response_model=PipelinePublic, response_model_by_alias=True
)
async def create_pipeline(
    body: PipelineCreate, principal: WritePrincipal, services: ServicesDep
) -> PipelinePublic:
    """Create a pipeline (status `created`). Every config error is a 422 naming its path."""
    return service.public(services, await service.create(services, principal.org_id, body))


@router.get("/pipelines")
async def list_pipelines(
    principal: CurrentPrincipal,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: PageOffset = 0,
    status_filter: Annotated[PipelineStatus | None, Query(alias="status")] = None,
) -> dict[str, Any]:
    total, rows = await service.list_page(services, principal.org_id, status_filter, limit, offset)
    return {
        "items": [service.public(services, r).model_dump(mode="json", by_alias=True) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/pipelines/{pipeline_id}", response_model=PipelinePublic, response_model_by_alias=True)
async def get_pipeline(
    pipeline_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> PipelinePublic:
    return service.public(services, await service.get(services, principal.org_id, pipeline_id))


@router.put("/pipelines/{pipeline_id}", response_model=PipelinePublic, response_model_by_alias=True)
async def update_pipeline(
    pipeline_id: str,
    body: PipelineUpdate,
    principal: WritePrincipal,
    services: ServicesDep,
    client: TemporalDep,
) -> PipelinePublic:
    """Replace the configuration. A running pipeline applies it from its current checkpoint
    (the next batch); stateful transforms start with fresh state when the chain changes."""
    row = await service.update(services, client, principal.org_id, pipeline_id, body)
    return service.public(services, row)


@router.delete("/pipelines/{pipeline_id}", status_code=204)
async def delete_pipeline(
    pipeline_id: str, principal: WritePrincipal, client: TemporalDep, services: ServicesDep
) -> Response:
    """Delete the pipeline, its item log, checkpoints and dead letters; a live workflow is
    terminated (deleting is not stopping: pending window state is discarded)."""
    await service.delete(services, client, principal.org_id, pipeline_id)
    return Response(status_code=204)


# --- lifecycle ----------------------------------------------------------------------------


def _lifecycle_route(
    action: str,
    operation: Callable[[Services, TemporalClient, str, str], Awaitable[Pipeline]],
    doc: str | None,
) -> None:
    async def route(
        pipeline_id: str, principal: WritePrincipal, services: ServicesDep, client: TemporalDep
    ) -> PipelinePublic:
        return service.public(
            services, await operation(services, client, principal.org_id, pipeline_id)
        )

    route.__name__ = route.__qualname__ = f"{action}_pipeline"  # the OpenAPI operation id
    route.__doc__ = doc
    router.post(
        f"/pipelines/{{pipeline_id}}/{action}",
        response_model=PipelinePublic,
        response_model_by_alias=True,
    )(route)


_lifecycle_route(
    "start",
    service.start,
    "Start processing from the saved state (committed offset + chain state).",
)
_lifecycle_route(
    "pause", service.pause, "Stop delivering after the batch in flight; items keep being accepted."
)
_lifecycle_route("resume", service.resume, None)
_lifecycle_route(
    "stop",
    service.stop,
    """Flush what the transforms hold (open windows, partial batches), deliver it, save the
    state and complete the workflow. Waits up to 20 s for that to finish.""",
)


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


async def ingest_response(ingesting: Awaitable[list[int]]) -> JSONResponse:
    """202 with the offsets once `ingesting` made the items durable; 429 with Retry-After when
    the pipeline has too much pending."""
    try:
        offsets = await ingesting
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
    item = service.one_item(await _json_body(request))
    idempotency = idempotency_key(request, principal, key, request.state.raw_body)
    return await ingest_response(
        service.ingest(services, principal.org_id, pipeline_id, [item], idempotency=idempotency)
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
    items = service.batch_items(body)
    idempotency = idempotency_key(request, principal, key, request.state.raw_body)
    # A bare array is stored as the validated text it came in.
    array_text = request.state.raw_body.decode() if isinstance(body, list) else None
    return await ingest_response(
        service.ingest(
            services,
            principal.org_id,
            pipeline_id,
            items,
            array_text=array_text,
            idempotency=idempotency,
        )
    )


# --- observability ------------------------------------------------------------------------


@router.get("/pipelines/{pipeline_id}/metrics")
async def pipeline_metrics(
    pipeline_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    """itemsProcessed/Failed/Filtered, throughput (items/s over the last minute), latency
    (ingest->delivered ms), backpressure (pending / maxPending), pending, lastCheckpoint."""
    return await service.metrics(services, principal.org_id, pipeline_id)


@router.get("/pipelines/{pipeline_id}/health")
async def pipeline_health(
    pipeline_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, Any]:
    return await service.health_of(services, principal.org_id, pipeline_id)


@router.get("/stats")
async def streaming_stats(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Organisation-wide: pipelines by status, items accepted/processed/failed, pending."""
    return await service.stats(services, principal.org_id)


@router.get("/pipelines/{pipeline_id}/stream", summary="SSE: status, metrics, delivery failures")
async def stream_pipeline(
    pipeline_id: str,
    principal: StreamPrincipal,
    streamer: StreamerDep,
    resume: LastEventIdDep,
    services: ServicesDep,
) -> EventSourceResponse:
    """Live events of one pipeline: `status`, `metrics` (once a second while running),
    `delivery_failed`, `config_updated`, `checkpoint`. Resumable by Last-Event-ID."""
    row = await service.get(services, principal.org_id, pipeline_id)
    flt = EventFilter(principal.org_id, frozenset({control.stream_key(row.id)}))
    return streamer.response(flt, resume_after=resume)


# --- checkpoints --------------------------------------------------------------------------


@router.post("/pipelines/{pipeline_id}/checkpoints", status_code=201)
async def create_checkpoint(
    pipeline_id: str, principal: WritePrincipal, services: ServicesDep, client: TemporalDep
) -> dict[str, Any]:
    """Snapshot the workflow's state (committed offset + chain state); returns its id."""
    return await service.create_checkpoint(services, client, principal.org_id, pipeline_id)


@router.get("/pipelines/{pipeline_id}/checkpoints")
async def list_checkpoints(
    pipeline_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    rows = await service.list_checkpoints(services, principal.org_id, pipeline_id, limit)
    return {"items": [c.model_dump(mode="json", by_alias=True) for c in rows]}


@router.post("/pipelines/{pipeline_id}/checkpoints/{checkpoint_id}/restore")
async def restore_checkpoint(
    pipeline_id: str,
    checkpoint_id: str,
    principal: WritePrincipal,
    services: ServicesDep,
    client: TemporalDep,
) -> dict[str, Any]:
    """Reprocess from the checkpoint's offset with its chain state. Counters stay cumulative."""
    return await service.restore_checkpoint(
        services, client, principal.org_id, pipeline_id, checkpoint_id
    )


# --- dead letters -------------------------------------------------------------------------


@router.get("/pipelines/{pipeline_id}/dead-letters")
async def list_dead_letters(
    pipeline_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="list ids after this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_replayed: Annotated[bool, Query(alias="includeReplayed")] = False,
) -> dict[str, Any]:
    body = await service.list_dead_letters(
        services,
        principal.org_id,
        pipeline_id,
        after=after,
        limit=limit,
        include_replayed=include_replayed,
    )
    # Dead letters are often the items nothing else could take; ASCII JSON keeps every one of
    # them readable (a lone surrogate cannot be encoded as UTF-8, its \u escape can).
    return Response(json.dumps(body, ensure_ascii=True), media_type="application/json")  # type: ignore[return-value]


@router.post("/pipelines/{pipeline_id}/dead-letters/replay")
async def replay_dead_letters(
    pipeline_id: str, principal: WritePrincipal, services: ServicesDep, client: TemporalDep
) -> dict[str, Any]:
    """Redeliver delivery-stage dead letters as they are and re-ingest transform-stage ones.
    Runs in the pipeline's workflow (secrets are resolved in the worker), so it must be
    running or paused."""
    return await service.replay_dead_letters(services, client, principal.org_id, pipeline_id)
