"""The `schedule` source: one Temporal Schedule per pipeline that ingests an item on every tick.

The schedule `pipeline-schedule-<pipelineId>` is created when the pipeline starts, paused and
unpaused with it, and deleted when it stops or is deleted. Each tick starts
`PipelineScheduleTickWorkflow`, whose activity ingests `{**payload, "scheduledAt": <ISO time>}`
with dedup key `schedule:<scheduled time>` — a tick that is retried (or re-run by Temporal's
catch-up) can never add a second item for the same instant.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from deeployd import temporal
from deeployd.pipelines import contract
from deeployd.pipelines.contract import ScheduleTickInput, schedule_id
from deeployd.pipelines.sources.common import SourceModel, parse_source
from deeployd.pipelines.sources.plugin import PipelineSource, SourceType, source_type
from deeployd.pipelines.transforms.errors import ConfigError
from deeployd.schedules import ensure_schedule

if TYPE_CHECKING:
    pass

MIN_INTERVAL_MS = 1000  # Temporal schedules have one-second resolution
MAX_PAYLOAD_BYTES = 16 * 1024  # the payload rides in the schedule's action: keep it small
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#LW-]+$")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


class ScheduleSource(SourceModel):
    type: Literal["schedule"]
    cron: str | None = Field(default=None, max_length=200)
    interval_ms: int | None = Field(default=None, ge=MIN_INTERVAL_MS, le=366 * 24 * 3600 * 1000)
    payload: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleSource:
        if (self.cron is None) == (self.interval_ms is None):
            raise ValueError("exactly one of 'cron' or 'intervalMs' is required")
        return self


def validate(source: dict[str, Any]) -> None:
    parsed = parse_source(ScheduleSource, source)
    if parsed.cron is not None:
        cron = parsed.cron.strip()
        fields = cron.split()
        ok = cron in _CRON_MACROS or (
            len(fields) in (5, 6, 7) and all(_CRON_FIELD.match(f) for f in fields)
        )
        if not ok:
            raise ConfigError(
                ("cron",),
                "not a cron expression: use 5 fields 'minute hour day-of-month month "
                "day-of-week' (e.g. '*/5 * * * *') or @hourly/@daily/...",
            )
    if len(json.dumps(parsed.payload, default=str)) > MAX_PAYLOAD_BYTES:
        raise ConfigError(("payload",), f"must be at most {MAX_PAYLOAD_BYTES} bytes of JSON")


def _schedule(org_id: str, pipeline_id: str, source: dict[str, Any], task_queue: str) -> Schedule:
    cron = source.get("cron")
    spec = (
        ScheduleSpec(cron_expressions=[cron])
        if cron
        else ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(milliseconds=source["intervalMs"]))]
        )
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            contract.SCHEDULE_TICK_WORKFLOW,
            ScheduleTickInput(
                org_id=org_id, pipeline_id=pipeline_id, payload=source.get("payload") or {}
            ),
            id=contract.tick_workflow_id(pipeline_id),
            task_queue=task_queue,
            typed_search_attributes=temporal_attributes(org_id, pipeline_id),
        ),
        spec=spec,
        # A tick that is still running (e.g. backpressure retries) is not doubled up; missed
        # ticks during an outage are caught up for at most a minute, not replayed for hours.
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(minutes=1)
        ),
        state=ScheduleState(note=f"source of pipeline {pipeline_id}"),
    )


def temporal_attributes(org_id: str, pipeline_id: str) -> TypedSearchAttributes:
    return temporal.search_attributes(org_id=org_id, pipeline_id=pipeline_id)


async def upsert_schedule(
    client: Client, task_queue: str, org_id: str, pipeline_id: str, source: dict[str, Any]
) -> None:
    """Create the pipeline's schedule, or bring an existing one up to date and unpause it."""
    schedule = _schedule(org_id, pipeline_id, source, task_queue)
    if not await ensure_schedule(client, schedule_id(pipeline_id), schedule, replace=True):
        await client.get_schedule_handle(schedule_id(pipeline_id)).unpause(note="pipeline started")


async def pause_schedule(client: Client, pipeline_id: str, *, paused: bool) -> None:
    handle = client.get_schedule_handle(schedule_id(pipeline_id))
    try:
        if paused:
            await handle.pause(note="pipeline paused")
        else:
            await handle.unpause(note="pipeline resumed")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def delete_schedule(client: Client, pipeline_id: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(pipeline_id)).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


@source_type("schedule")
class ScheduleSourceType(SourceType):
    """One Temporal Schedule per pipeline: created on start, paused and resumed with the
    pipeline, deleted when it stops."""

    def validate(self, source: dict[str, Any]) -> None:
        validate(source)

    async def on_started(self, pipeline: PipelineSource) -> None:
        await upsert_schedule(
            pipeline.services.require_temporal(),
            pipeline.services.settings.task_queue,
            pipeline.org_id,
            pipeline.pipeline_id,
            pipeline.source,
        )

    async def on_paused(self, pipeline: PipelineSource, paused: bool) -> None:
        await pause_schedule(
            pipeline.services.require_temporal(), pipeline.pipeline_id, paused=paused
        )

    async def on_stopped(self, pipeline: PipelineSource) -> None:
        await delete_schedule(pipeline.services.require_temporal(), pipeline.pipeline_id)
