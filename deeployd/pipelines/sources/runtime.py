"""Starting the source router when a worker starts (idempotent, like the retention schedule)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from deeployd.pipelines import contract
from deeployd.pipelines.contract import SourceRouterInput, router_workflow_id
from deeployd.pipelines.sources.router import current_event_id
from deeployd.services import Services
from deeployd.settings import Settings

__all__ = ["ensure_source_router", "router_workflow_id"]


async def ensure_source_router(
    client: Client,
    settings: Settings,
    services: Services | None = None,
    *,
    pass_seconds: float = 60.0,
) -> str:
    """Start the router workflow unless it is already running; returns its workflow id.

    A new router starts after the last event in the log (events published before it existed
    are not routed); with `services` that point is taken now, else by the workflow's first
    activity.
    """
    workflow_id = router_workflow_id(settings.task_queue)
    cursor = await current_event_id(services) if services is not None else None
    try:
        await client.start_workflow(
            contract.SOURCE_ROUTER_WORKFLOW,
            SourceRouterInput(cursor=cursor, pass_seconds=pass_seconds),
            id=workflow_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        pass
    return workflow_id
