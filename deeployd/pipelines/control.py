"""Driving a pipeline's workflow from the API: start, signals, updates, queries, status.

The `pipelines` row holds the status users see; the workflow holds the live state. Status
changes are written here and published on the pipeline's stream (`pipeline:<id>`, type
`status`). For pipelines without a running workflow, metrics come from the state mirror.
The workflow is driven by the names in `deeployd.pipelines.contract`, with typed results.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio.client import Client as TemporalClient
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryRejectedError,
)
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from deeployd import temporal
from deeployd.errors import Unavailable
from deeployd.models import utcnow
from deeployd.models.pipeline import Pipeline
from deeployd.pipelines import contract
from deeployd.pipelines.contract import (
    CheckpointResult,
    Counters,
    PipelineState,
    PipelineWorkflowInput,
    ReplayResult,
    RestoreResult,
    batch_settings,
    metrics_view,
    stream_key,
    workflow_id,
)
from deeployd.pipelines.ingest import latest_offset
from deeployd.services import Services

log = logging.getLogger(__name__)

STOP_WAIT_S = 20.0
QUERY_TIMEOUT = timedelta(seconds=5)


def saved_state(row: Pipeline) -> PipelineState:
    if row.state:
        return PipelineState.model_validate(row.state)
    return PipelineState(committed_offset=row.committed_offset)


def workflow_input(
    row: Pipeline, *, last_offset: int = 0, paused: bool = False
) -> PipelineWorkflowInput:
    settings = batch_settings(row.options, row.destination)
    return PipelineWorkflowInput(
        org_id=row.org_id,
        pipeline_id=row.id,
        name=row.name,
        source_type=row.source.get("type", ""),
        destination_type=row.destination.get("type", ""),
        state=saved_state(row),
        retry=settings.retry,
        batch_size=settings.batch_size,
        max_wait_ms=settings.max_wait_ms,
        paused=paused,
        last_offset=last_offset,
    )


async def start_workflow(client: TemporalClient, services: Services, row: Pipeline) -> None:
    await client.start_workflow(
        contract.PIPELINE_WORKFLOW,
        workflow_input(row, last_offset=await latest_offset(services.db, row.id)),
        id=workflow_id(row.id),
        task_queue=services.settings.task_queue,
        result_type=PipelineState,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=temporal.search_attributes(
            org_id=row.org_id,
            pipeline_id=row.id,
            pipeline_name=row.name,
            status=contract.PipelineStatus.running,
        ),
        memo={
            "name": row.name,
            "source": row.source.get("type"),
            "destination": row.destination.get("type"),
        },
    )


def handle(client: TemporalClient, pipeline_id: str) -> WorkflowHandle[Any, PipelineState]:
    return client.get_workflow_handle(workflow_id(pipeline_id), result_type=PipelineState)


async def pause(client: TemporalClient, pipeline_id: str) -> None:
    await handle(client, pipeline_id).signal(contract.PAUSE)


async def resume(client: TemporalClient, pipeline_id: str) -> None:
    await handle(client, pipeline_id).signal(contract.RESUME)


async def stop(client: TemporalClient, pipeline_id: str) -> None:
    await handle(client, pipeline_id).signal(contract.STOP)


async def config_updated(client: TemporalClient, pipeline_id: str) -> None:
    await handle(client, pipeline_id).signal(contract.CONFIG_UPDATED)


async def terminate(client: TemporalClient, pipeline_id: str, reason: str) -> None:
    await handle(client, pipeline_id).terminate(reason)


async def create_checkpoint(client: TemporalClient, pipeline_id: str) -> CheckpointResult:
    return await handle(client, pipeline_id).execute_update(
        contract.CREATE_CHECKPOINT, result_type=CheckpointResult
    )


async def restore(client: TemporalClient, pipeline_id: str, state: PipelineState) -> RestoreResult:
    return await handle(client, pipeline_id).execute_update(
        contract.RESTORE, state, result_type=RestoreResult
    )


async def replay_dead_letters(client: TemporalClient, pipeline_id: str) -> ReplayResult:
    return await handle(client, pipeline_id).execute_update(
        contract.REPLAY_DEAD_LETTERS, result_type=ReplayResult
    )


async def workflow_running(client: TemporalClient, pipeline_id: str) -> bool:
    try:
        description = await handle(client, pipeline_id).describe()
    except RPCError:
        return False
    return description.status == WorkflowExecutionStatus.RUNNING


async def wait_finished(client: TemporalClient, pipeline_id: str) -> bool:
    try:
        await asyncio.wait_for(handle(client, pipeline_id).result(), STOP_WAIT_S)
    except TimeoutError:
        return False
    except Exception:  # failed/terminated: finished all the same
        log.warning("pipeline %s workflow ended abnormally", pipeline_id, exc_info=True)
    return True


async def query_metrics(client: TemporalClient, pipeline_id: str) -> dict[str, Any] | None:
    """The live workflow's metrics, or None when it is not running.

    "Not running" covers no workflow, a closed one, and one no worker answers for right now (a
    worker being killed or restarting): the caller then shows the stored metrics. When Temporal
    itself cannot be reached, that surfaces as Unavailable.
    """
    wf = handle(client, pipeline_id)
    try:
        return await wf.query(
            contract.METRICS_QUERY, rpc_timeout=QUERY_TIMEOUT, result_type=dict[str, Any]
        )
    except WorkflowQueryRejectedError:
        return None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        query_error = exc
    try:  # Temporal answers, so only the workflow's worker could not: not running right now
        await wf.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise Unavailable("Temporal", f"Temporal cannot be reached: {exc}") from exc
    log.info("pipeline %s did not answer the metrics query: %s", pipeline_id, query_error)
    return None


def stored_metrics(row: Pipeline) -> dict[str, Any]:
    """Metrics of a pipeline without a live workflow: counters from the saved state."""
    counters = saved_state(row).counters if row.state else Counters()
    return metrics_view(
        counters,
        committed_offset=row.committed_offset,
        status=row.status,
        last_error=row.error,
        last_error_at=None,
    )


async def set_status(services: Services, row: Pipeline, status: str, session: Any) -> None:
    previous = row.status
    row.status = status
    row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    if previous != status:
        await services.publisher.publish(
            row.org_id,
            stream_key(row.id),
            contract.STATUS_EVENT,
            {"pipelineId": row.id, "status": status, "previous": previous},
        )


__all__ = [
    "config_updated",
    "create_checkpoint",
    "handle",
    "pause",
    "query_metrics",
    "replay_dead_letters",
    "restore",
    "resume",
    "saved_state",
    "set_status",
    "start_workflow",
    "stop",
    "stored_metrics",
    "stream_key",
    "terminate",
    "wait_finished",
    "workflow_id",
    "workflow_input",
    "workflow_running",
]
