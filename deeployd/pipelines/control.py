"""Driving a pipeline's workflow from the API: start, signals, updates, queries, status.

The `pipelines` row holds the status users see; the workflow holds the live state. Status
changes are written here and published on the pipeline's stream (`pipeline:<id>`, type
`status`). For pipelines without a running workflow, metrics come from the state mirror.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError

from deeployd import temporal
from deeployd.models import utcnow
from deeployd.models.pipeline import Pipeline
from deeployd.pipelines.ingest import latest_offset
from deeployd.pipelines.runtime import (
    Counters,
    PipelineState,
    PipelineWorkflowInput,
    RetrySpec,
)
from deeployd.services import Services

log = logging.getLogger(__name__)

STOP_WAIT_S = 20.0
QUERY_TIMEOUT = timedelta(seconds=5)


def workflow_id(pipeline_id: str) -> str:
    return f"pipeline-{pipeline_id}"


def stream_key(pipeline_id: str) -> str:
    return f"pipeline:{pipeline_id}"


def saved_state(row: Pipeline) -> PipelineState:
    if row.state:
        return PipelineState.model_validate(row.state)
    return PipelineState(committed_offset=row.committed_offset)


def workflow_input(
    row: Pipeline, *, last_offset: int = 0, paused: bool = False
) -> PipelineWorkflowInput:
    options = row.options or {}
    policy = (row.destination.get("config") or {}).get("retryPolicy") or {}
    return PipelineWorkflowInput(
        org_id=row.org_id,
        pipeline_id=row.id,
        name=row.name,
        source_type=row.source.get("type", ""),
        destination_type=row.destination.get("type", ""),
        state=saved_state(row),
        retry=RetrySpec(
            max_retries=int(policy.get("maxRetries", 3)),
            backoff_ms=int(policy.get("backoffMs", 1000)),
        ),
        batch_size=int(options.get("batchSize", 1000)),
        max_wait_ms=int(options.get("maxWaitMs", 1000)),
        paused=paused,
        last_offset=last_offset,
    )


async def start_workflow(client: TemporalClient, services: Services, row: Pipeline) -> None:
    from workflows.pipeline import PipelineWorkflow

    await client.start_workflow(
        PipelineWorkflow.run,
        workflow_input(row, last_offset=await latest_offset(services, row.id)),
        id=workflow_id(row.id),
        task_queue=services.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(temporal.ORG_ID, row.org_id),
                SearchAttributePair(temporal.PIPELINE_ID, row.id),
                SearchAttributePair(temporal.PIPELINE_NAME, row.name),
                SearchAttributePair(temporal.STATUS, "running"),
            ]
        ),
        memo={
            "name": row.name,
            "source": row.source.get("type"),
            "destination": row.destination.get("type"),
        },
    )


def handle(client: TemporalClient, pipeline_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(workflow_id(pipeline_id))


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
    try:
        result: dict[str, Any] = await handle(client, pipeline_id).query(
            "metrics", rpc_timeout=QUERY_TIMEOUT
        )
        return result
    except Exception:
        return None


def stored_metrics(row: Pipeline) -> dict[str, Any]:
    """Metrics of a pipeline without a live workflow: counters from the saved state."""
    counters = saved_state(row).counters if row.state else Counters()
    return {
        "itemsProcessed": counters.processed,
        "itemsFailed": counters.failed,
        "itemsFiltered": counters.filtered,
        "itemsDelivered": counters.delivered,
        "deadLetters": counters.dead_lettered,
        "throughput": 0.0,
        "latency": {"avg": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0},
        "committedOffset": row.committed_offset,
        "status": row.status,
        "lastError": row.error,
        "lastErrorAt": None,
    }


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
            "status",
            {"pipelineId": row.id, "status": status, "previous": previous},
        )
