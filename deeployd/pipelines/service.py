"""What the pipeline API does, without HTTP: the operations its routes call.

Each operation opens its own unit of work, drives the workflow through `control`, calls the
sources' lifecycle hooks, and refuses with `deeployd.errors` (NotFound, Conflict, Invalid). SQL
lives in `store`; the health rules in `health`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client as TemporalClient

from deeployd import temporal
from deeployd.errors import Conflict, Invalid, NotFound, Unavailable
from deeployd.idempotency import IdempotencyKey
from deeployd.ids import new_id
from deeployd.models import utcnow
from deeployd.models.pipeline import (
    CheckpointPublic,
    DeadLetterPublic,
    Pipeline,
    PipelineBase,
    PipelineCheckpoint,
    PipelinePublic,
    PipelineStatus,
)
from deeployd.pipelines import contract, control, health, store
from deeployd.pipelines.config import validate_pipeline_body
from deeployd.pipelines.errors import PipelineNotFound
from deeployd.pipelines.ingest import (
    DEFAULT_MAX_PENDING,
    MAX_BATCH_ITEMS,
    ingest_items,
    ingest_json_array,
    latest_offset,
)
from deeployd.pipelines.runtime import INLINE_STATE_BYTES, PipelineState
from deeployd.pipelines.sources import lifecycle as source_hooks
from deeployd.secretstore import MissingSecretError, SecretStore
from deeployd.services import Services

ACTIVE = contract.ACTIVE_STATUSES

Loc = tuple[str | int, ...]


def public(services: Services, row: Pipeline) -> PipelinePublic:
    wid = control.workflow_id(row.id)
    return PipelinePublic.model_validate(
        {
            **row.model_dump(),
            "workflow_id": wid,
            "temporal_url": temporal.workflow_url(services.settings, wid),
        }
    )


async def _get(session: Any, org_id: str, pipeline_id: str) -> Pipeline:
    row = await store.get_pipeline(session, org_id, pipeline_id)
    if row is None:
        raise NotFound("pipeline not found")
    return row


async def _to_change(
    session: Any, org_id: str, pipeline_id: str, action: str, target: str, accepts: Sequence[str]
) -> tuple[Pipeline, bool]:
    """The pipeline, and whether `action` has work to do: not when it already is in `target`
    (the call is idempotent); Conflict when its status is not one of `accepts`."""
    row = await _get(session, org_id, pipeline_id)
    if row.status == target:
        return row, False
    if row.status not in accepts:
        raise Conflict(f"cannot {action} a pipeline that is {row.status}")
    return row, True


# --- configuration ------------------------------------------------------------------------


async def check_body(services: Services, org_id: str, data: dict[str, Any]) -> None:
    """Every check a pipeline body (camelCase dict) must pass before it is stored: Invalid
    naming each bad path."""
    await validate_pipeline_body(
        data, org_id, services.db, allow_private_urls=services.settings.allow_private_urls
    )
    await source_hooks.check_source(services, org_id, data["source"])
    await source_hooks.check_destination(services, org_id, data["destination"])


def _wire(body: PipelineBase) -> dict[str, Any]:
    return body.model_dump(mode="json", by_alias=True)


async def validate(services: Services, org_id: str, body: PipelineBase) -> None:
    await check_body(services, org_id, _wire(body))


async def create(services: Services, org_id: str, body: PipelineBase) -> Pipeline:
    """A new pipeline (status `created`) once every check passed."""
    data = _wire(body)
    await check_body(services, org_id, data)
    row = Pipeline(
        id=new_id("pl"),
        org_id=org_id,
        name=body.name,
        source=data["source"],
        transforms=data["transforms"],
        destination=data["destination"],
        options=data["options"],
        status=PipelineStatus.created,
    )
    async with services.db.session() as session:
        await store.insert_pipeline(session, row)
    await source_hooks.on_pipeline_created(services, row.org_id, row.id, row.source)
    return row


async def list_page(
    services: Services, org_id: str, status: PipelineStatus | None, limit: int, offset: int
) -> tuple[int, list[Pipeline]]:
    async with services.db.session() as session:
        return await store.list_pipelines(session, org_id, status, limit, offset)


async def get(services: Services, org_id: str, pipeline_id: str) -> Pipeline:
    async with services.db.session() as session:
        return await _get(session, org_id, pipeline_id)


async def update(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str, body: PipelineBase
) -> Pipeline:
    """Replace the configuration; a running pipeline applies it from its current checkpoint."""
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        data = _wire(body)
        await check_body(services, org_id, data)
        old_source = dict(row.source)
        row.name = body.name
        row.source, row.transforms = data["source"], data["transforms"]
        row.destination, row.options = data["destination"], data["options"]
        row.config_version += 1
        row.updated_at = utcnow()
        await store.save(session, row)
    await source_hooks.on_pipeline_updated(
        services, row.org_id, row.id, old_source, row.source, row.status
    )
    if row.status in ACTIVE:
        try:
            await control.config_updated(client, row.id)
        except Exception:  # the activity reads the new config anyway; the signal only wakes it
            pass
    await services.publisher.publish(
        row.org_id,
        control.stream_key(row.id),
        "config_updated",
        {"pipelineId": row.id, "configVersion": row.config_version},
    )
    return row


async def delete(services: Services, client: TemporalClient, org_id: str, pipeline_id: str) -> None:
    """The pipeline and everything it holds; a live workflow is terminated (pending window
    state is discarded)."""
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        if await control.workflow_running(client, row.id):
            await control.terminate(client, row.id, "pipeline deleted")
        await source_hooks.on_pipeline_deleted(services, row.org_id, row.id, row.source)
        await store.delete_pipeline(session, row)


# --- lifecycle ----------------------------------------------------------------------------


async def start(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str
) -> Pipeline:
    """Start processing from the saved state (committed offset + chain state)."""
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        if row.status == PipelineStatus.paused:
            raise Conflict("pipeline is paused; resume it instead")
        if row.status != PipelineStatus.running or not await control.workflow_running(
            client, row.id
        ):
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
        return row


async def pause(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str
) -> Pipeline:
    """Stop delivering after the batch in flight; items keep being accepted."""
    return await _set_paused(services, client, org_id, pipeline_id, paused=True)


async def resume(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str
) -> Pipeline:
    return await _set_paused(services, client, org_id, pipeline_id, paused=False)


async def _set_paused(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str, *, paused: bool
) -> Pipeline:
    action = "pause" if paused else "resume"
    target, current = PipelineStatus.running, PipelineStatus.paused
    if paused:
        target, current = current, target
    async with services.db.session() as session:
        row, change = await _to_change(session, org_id, pipeline_id, action, target, [current])
        if not change:
            return row
        if paused:
            # The row first: a batch waiting for items re-checks it, so nothing ingested after
            # this call is delivered until resume.
            await control.set_status(services, row, target, session)
        await (control.pause if paused else control.resume)(client, row.id)
        hook = source_hooks.on_pipeline_paused if paused else source_hooks.on_pipeline_resumed
        await hook(services, row.org_id, row.id, row.source)
        if not paused:
            await control.set_status(services, row, target, session)
        return row


async def stop(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str
) -> Pipeline:
    """Flush what the transforms hold, deliver it, save the state and complete the workflow;
    waits up to control.STOP_WAIT_S for that."""
    async with services.db.session() as session:
        row, change = await _to_change(
            session,
            org_id,
            pipeline_id,
            "stop",
            PipelineStatus.stopped,
            [*ACTIVE, PipelineStatus.failed],
        )
        if not change:
            return row
        if await control.workflow_running(client, row.id):
            await control.stop(client, row.id)
            if not await control.wait_finished(client, row.id):
                # Still flushing: the workflow records `stopped` itself when it completes.
                await store.reload(session, row)
                return row
        await store.reload(session, row)  # the workflow saved its final state (and status)
        await control.set_status(services, row, PipelineStatus.stopped, session)
        await source_hooks.on_pipeline_stopped(services, row.org_id, row.id, row.source)
        return row


# --- ingest -------------------------------------------------------------------------------


def one_item(body: Any, loc: Loc = ("body",)) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid(loc, "an item must be a JSON object")
    return body


def checked_items(items: Any, loc: Loc) -> list[dict[str, Any]]:
    """`items` as a list of 1 to MAX_BATCH_ITEMS objects, or Invalid located at `loc`."""
    if not isinstance(items, list):
        raise Invalid(loc, "must be an array of items")
    if not items or len(items) > MAX_BATCH_ITEMS:
        raise Invalid(loc, f"must hold 1 to {MAX_BATCH_ITEMS} items")
    for index, item in enumerate(items):
        one_item(item, (*loc, index))
    return items


def batch_items(body: Any) -> list[dict[str, Any]]:
    """The items of a batch body: a JSON array of objects, or `{"items": [...]}`."""
    if isinstance(body, dict):
        return checked_items(body.get("items"), ("body", "items"))
    return checked_items(body, ("body",))


async def ingest(
    services: Services,
    org_id: str,
    pipeline_id: str,
    items: list[dict[str, Any]],
    *,
    array_text: str | None = None,
    idempotency: IdempotencyKey | None = None,
    dedup_keys: Sequence[str] | None = None,
) -> list[int]:
    """Append items durably; their offsets. `array_text`: the JSON array `items` came from,
    stored as it is. BackpressureExceeded when the pipeline has too much pending."""
    try:
        if array_text is not None:
            return await ingest_json_array(
                services.db, org_id, pipeline_id, array_text, len(items), idempotency=idempotency
            )
        return await ingest_items(
            services.db,
            org_id,
            pipeline_id,
            items,
            idempotency=idempotency,
            dedup_keys=list(dedup_keys) if dedup_keys is not None else None,
        )
    except PipelineNotFound:
        raise NotFound("pipeline not found") from None


async def webhook_target(services: Services, pipeline_id: str) -> store.WebhookTarget:
    target = await store.webhook_target(services.db.pool, pipeline_id)
    if target is None:
        raise NotFound("no webhook pipeline with this id")
    return target


async def webhook_secret(services: Services, target: store.WebhookTarget) -> str | None:
    """The signing secret of a webhook source (None: unsigned requests are accepted)."""
    reference = target.source.get("secret")
    if not reference:
        return None
    try:
        return str(
            await SecretStore(services.db, services.secret_box).resolve(target.org_id, reference)
        )
    except MissingSecretError:
        raise Unavailable(
            "webhook secret", "the pipeline's webhook secret is not configured"
        ) from None


# --- observability ------------------------------------------------------------------------


async def _metrics(services: Services, row: Pipeline) -> dict[str, Any]:
    client = services.temporal
    live = None
    if row.status in ACTIVE and client is not None:
        live = await control.query_metrics(client, row.id)
    metrics = live if live is not None else control.stored_metrics(row)
    max_pending = int((row.options or {}).get("maxPending", DEFAULT_MAX_PENDING))
    last_offset = await latest_offset(services.db, row.id)
    pending = max(0, last_offset - row.committed_offset)
    metrics["pending"] = pending
    metrics["maxPending"] = max_pending
    metrics["backpressure"] = round(min(1.0, pending / max_pending), 4)
    metrics["latestOffset"] = last_offset
    return metrics


async def metrics(services: Services, org_id: str, pipeline_id: str) -> dict[str, Any]:
    """Counters, throughput, latency, backpressure, pending and the last checkpoint."""
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        result = await _metrics(services, row)
        ckpt = await store.latest_checkpoint(session, row.id)
    result["lastCheckpoint"] = (
        None
        if ckpt is None
        else {"id": ckpt.id, "offset": ckpt.offset, "createdAt": ckpt.created_at.isoformat()}
    )
    return result


async def health_of(services: Services, org_id: str, pipeline_id: str) -> dict[str, Any]:
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        client = services.temporal
        result = await _metrics(services, row)
        workflow_missing = row.status in ACTIVE and (
            client is None or not await control.workflow_running(client, row.id)
        )
        waiting = await store.count_waiting_dead_letters(session, row.id)
    verdict = health.assess(
        status=row.status,
        error=row.error,
        workflow_missing=workflow_missing,
        metrics=result,
        waiting_dead_letters=waiting,
        now_ms=utcnow().timestamp() * 1000,
    )
    return {
        "status": verdict.status,
        "reasons": verdict.reasons,
        "pipelineStatus": row.status,
        "backpressure": result["backpressure"],
        "pending": result["pending"],
        "checkedAt": utcnow().isoformat(),
    }


async def stats(services: Services, org_id: str) -> dict[str, Any]:
    """Organisation-wide: pipelines by status, items accepted/processed/failed, pending."""
    totals = await store.org_totals(services.db.pool, org_id)
    dead = await store.count_org_waiting_dead_letters(services.db.pool, org_id)
    by_status = {s.value: 0 for s in PipelineStatus}
    for t in totals:
        by_status[t.status] = t.pipelines
    return {
        "pipelines": sum(by_status.values()),
        "byStatus": by_status,
        "itemsIngested": sum(t.ingested for t in totals),
        "pending": sum(t.pending for t in totals),
        "itemsProcessed": sum(t.processed for t in totals),
        "itemsFailed": sum(t.failed for t in totals),
        "itemsFiltered": sum(t.filtered for t in totals),
        "itemsDelivered": sum(t.delivered for t in totals),
        "deadLetters": dead,
    }


# --- checkpoints --------------------------------------------------------------------------


async def _inline_state(session: Any, state: PipelineState) -> PipelineState:
    """A checkpoint must be self-contained: bring a by-reference chain state inline."""
    if state.chain_state_ref is None:
        return state
    big = await store.get_chain_state(session, state.chain_state_ref)
    if big is None:
        raise Conflict("the pipeline's saved state is incomplete; start it first")
    return state.model_copy(update={"chain_state": big.state, "chain_state_ref": None})


async def create_checkpoint(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str
) -> dict[str, Any]:
    """Snapshot the state (committed offset + chain state): `{id, offset}`."""
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        result: dict[str, Any]
        if row.status in ACTIVE and await control.workflow_running(client, row.id):
            result = (await control.create_checkpoint(client, row.id)).model_dump()
        else:
            state = await _inline_state(session, control.saved_state(row))
            ckpt = PipelineCheckpoint(
                id=new_id("ckpt"),
                org_id=row.org_id,
                pipeline_id=row.id,
                offset=state.committed_offset,
                state=state.model_dump(mode="json"),
            )
            await store.save(session, ckpt)
            result = {"id": ckpt.id, "offset": ckpt.offset}
    await services.publisher.publish(
        row.org_id, control.stream_key(row.id), "checkpoint", {"pipelineId": row.id, **result}
    )
    return result


async def list_checkpoints(
    services: Services, org_id: str, pipeline_id: str, limit: int
) -> list[CheckpointPublic]:
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        rows = await store.list_checkpoints(session, row.org_id, row.id, limit)
    return [
        CheckpointPublic(
            id=c.id,
            pipeline_id=c.pipeline_id,
            offset=c.offset,
            items_processed=int(c.state.get("counters", {}).get("processed", 0)),
            created_at=c.created_at,
        )
        for c in rows
    ]


async def restore_checkpoint(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str, checkpoint_id: str
) -> dict[str, Any]:
    """Reprocess from the checkpoint's offset with its chain state; counters stay cumulative."""
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        ckpt = await store.get_checkpoint(session, row.org_id, row.id, checkpoint_id)
        if ckpt is None:
            raise NotFound("checkpoint not found")
        restored = PipelineState.model_validate(ckpt.state)
        restored.counters = control.saved_state(row).counters
        if restored.chain_state is not None:
            text = json.dumps(restored.chain_state, separators=(",", ":"))
            if len(text) > INLINE_STATE_BYTES:  # keep the update (and history) small
                ref = await store.add_chain_state(session, row.org_id, row.id, restored.chain_state)
                restored.chain_state, restored.chain_state_ref = None, ref
        if row.status in ACTIVE and await control.workflow_running(client, row.id):
            await control.restore(client, row.id, restored)
        row.state = restored.model_dump(mode="json")
        row.committed_offset = restored.committed_offset
        row.updated_at = utcnow()
        await store.save(session, row)
    await services.publisher.publish(
        row.org_id,
        control.stream_key(row.id),
        "restored",
        {"pipelineId": row.id, "checkpointId": ckpt.id, "offset": ckpt.offset},
    )
    return {"checkpointId": ckpt.id, "offset": ckpt.offset, "status": row.status}


# --- dead letters -------------------------------------------------------------------------


async def list_dead_letters(
    services: Services,
    org_id: str,
    pipeline_id: str,
    *,
    after: int,
    limit: int,
    include_replayed: bool,
) -> dict[str, Any]:
    """`{items, nextAfter}`; each item's `value` as stored (it may hold a lone surrogate)."""
    async with services.db.session() as session:
        row = await _get(session, org_id, pipeline_id)
        rows = await store.list_dead_letters(
            session, row.org_id, row.id, after=after, limit=limit, include_replayed=include_replayed
        )
    items = []
    for r in rows:
        item = DeadLetterPublic.model_validate(r.model_dump()).model_dump(
            mode="json", by_alias=True, exclude={"value"}
        )
        item["value"] = r.value
        items.append(item)
    return {"items": items, "nextAfter": rows[-1].id if rows else after}


async def replay_dead_letters(
    services: Services, client: TemporalClient, org_id: str, pipeline_id: str
) -> dict[str, Any]:
    """Redeliver delivery-stage dead letters and re-ingest transform-stage ones, in the
    pipeline's workflow (secrets are resolved in the worker): it must be running or paused."""
    row = await get(services, org_id, pipeline_id)
    if row.status not in ACTIVE or not await control.workflow_running(client, row.id):
        raise Conflict("start the pipeline to replay its dead letters")
    result = await control.replay_dead_letters(client, row.id)
    return result.model_dump()
