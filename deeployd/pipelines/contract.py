"""What crosses a process boundary in the pipelines family, defined once.

The API and the worker meet only here: workflow and activity inputs/outputs, the pipeline
status and its active/terminal sets, workflow and schedule ids, the stream key and its event
types, and the names of every workflow, signal, update and query (the workflows declare
themselves with these names; the API drives them by name with `result_type=`). Standard library
and pydantic only: safe inside the workflow sandbox and free of any service.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

# --- workflow types, signals, updates, queries --------------------------------------------
PIPELINE_WORKFLOW = "PipelineWorkflow"
SOURCE_ROUTER_WORKFLOW = "SourceRouterWorkflow"
SCHEDULE_TICK_WORKFLOW = "PipelineScheduleTickWorkflow"
RETENTION_WORKFLOW = "EventRetentionWorkflow"

PAUSE = "pause"
RESUME = "resume"
STOP = "stop"
CONFIG_UPDATED = "config_updated"
CREATE_CHECKPOINT = "create_checkpoint"
RESTORE = "restore"
REPLAY_DEAD_LETTERS = "replay_dead_letters"
STATUS_QUERY = "status"
METRICS_QUERY = "metrics"


# --- statuses -------------------------------------------------------------------------------
class PipelineStatus(StrEnum):
    """`pipelines.status` and the workflow's own status (`stopping` exists only in the workflow)."""

    created = "created"
    running = "running"
    paused = "paused"
    stopping = "stopping"
    stopped = "stopped"
    failed = "failed"


ACTIVE_STATUSES = frozenset({PipelineStatus.running, PipelineStatus.paused})
TERMINAL_STATUSES = frozenset({PipelineStatus.stopped, PipelineStatus.failed})


# --- ids and stream keys --------------------------------------------------------------------
RETENTION_SCHEDULE_ID = "deeployd-event-retention"
RETENTION_RUN_ID = "deeployd-event-retention-run"


def workflow_id(pipeline_id: str) -> str:
    return f"pipeline-{pipeline_id}"


def router_workflow_id(task_queue: str) -> str:
    # One router per deployment (= task queue): a fixed id, so every worker start finds it.
    return f"pipeline-source-router-{task_queue}"


def schedule_id(pipeline_id: str) -> str:
    """The Temporal Schedule of a `schedule` source."""
    return f"pipeline-schedule-{pipeline_id}"


def tick_workflow_id(pipeline_id: str) -> str:
    return f"pipeline-tick-{pipeline_id}"


def stream_key(pipeline_id: str) -> str:
    return f"pipeline:{pipeline_id}"


# Event types published on `stream_key(pipeline_id)`.
STATUS_EVENT = "status"
METRICS_EVENT = "metrics"
DELIVERY_FAILED_EVENT = "delivery_failed"


# --- the pipeline workflow's data -----------------------------------------------------------
CONTINUE_AS_NEW_EVERY = 500  # batches per run: ~3K history events, well inside the 10K budget
DEFAULT_BATCH_SIZE = 1000
DEFAULT_MAX_WAIT_MS = 1000
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_MS = 1000


class Counters(BaseModel):
    processed: int = 0  # input items taken from the log (whatever happened to them)
    filtered: int = 0  # dropped by filter steps
    failed: int = 0  # transform failures + late items + undeliverable outputs (dead letters)
    delivered: int = 0  # outputs the destination accepted
    dead_lettered: int = 0

    def add(self, other: Counters) -> None:
        self.processed += other.processed
        self.filtered += other.filtered
        self.failed += other.failed
        self.delivered += other.delivered
        self.dead_lettered += other.dead_lettered


class PipelineState(BaseModel):
    """Everything needed to resume a pipeline exactly: the workflow carries it across
    continue-as-new, checkpoints store it, the `pipelines.state` column mirrors it."""

    committed_offset: int = 0
    chain_state: dict[str, Any] | None = None
    # A large chain state (e.g. thousands of aggregate groups) is kept in
    # `pipeline_chain_states` and referenced by id, so workflow history stays small.
    chain_state_ref: int | None = None
    chain_version: int = 0  # the config_version chain_state belongs to
    counters: Counters = Field(default_factory=Counters)
    # The chain state holds values PostgreSQL jsonb or Temporal's payloads cannot carry as they
    # are (NUL, lone surrogates, non-finite numbers) and was escaped by `store_chain_state`.
    chain_state_escaped: bool = False


class RetrySpec(BaseModel):
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_ms: int = DEFAULT_BACKOFF_MS


class LatencySlot(BaseModel):
    """One second of the metrics window."""

    second: int
    processed: int = 0
    count: int = 0
    total_ms: float = 0.0
    buckets: dict[int, int] = Field(default_factory=dict)


class PipelineWorkflowInput(BaseModel):
    org_id: str
    pipeline_id: str
    name: str
    source_type: str
    destination_type: str
    state: PipelineState = Field(default_factory=PipelineState)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS
    paused: bool = False
    slots: list[LatencySlot] = Field(default_factory=list)
    started_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None
    last_offset: int = 0
    continue_every: int = CONTINUE_AS_NEW_EVERY


class ProcessBatchInput(BaseModel):
    org_id: str
    pipeline_id: str
    state: PipelineState
    mode: Literal["deliver", "dead_letter", "flush"] = "deliver"
    batch_size: int = DEFAULT_BATCH_SIZE
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS
    through_offset: int | None = None  # dead_letter: the batch the failed attempts covered
    error: str | None = None  # dead_letter: why delivery gave up
    # dead_letter: "state" when the batch's new state could not be saved (its items are parked
    # and the previous state kept), else "delivery" (its outputs are parked)
    failed_stage: Literal["delivery", "state"] = "delivery"
    # dead_letter: {"k", "digest"} of the outputs the failed attempts delivered (not parked)
    delivered_prefix: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None  # published on `pipeline:<id>` before the batch
    prune: bool = False  # also delete log items no longer needed (see PipelineActivities)


class ProcessBatchResult(BaseModel):
    state: PipelineState
    delta: Counters
    items: int  # input items in this batch
    last_offset: int  # the log's latest offset as seen by this batch (pending = it - committed)
    latency_count: int = 0
    latency_total_ms: float = 0.0
    latency_buckets: dict[int, int] = Field(default_factory=dict)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS


class SaveCheckpointInput(BaseModel):
    org_id: str
    pipeline_id: str
    state: PipelineState


class ReplayInput(BaseModel):
    org_id: str
    pipeline_id: str
    limit: int = 10_000


class ReplayResult(BaseModel):
    redelivered: int = 0
    reingested: int = 0
    failed: int = 0
    error: str | None = None


class SetStatusInput(BaseModel):
    org_id: str
    pipeline_id: str
    status: str
    error: str | None = None
    # `failed`: the workflow's own state, written back to the mirror (a batch that saved its
    # state before a delivery that never completed must be processed again on the next start)
    state: PipelineState | None = None


class SaveStateInput(BaseModel):
    org_id: str
    pipeline_id: str
    state: PipelineState


class BatchSettings(BaseModel):
    """What a pipeline row's `options` and destination `retryPolicy` mean to the workflow."""

    retry: RetrySpec = Field(default_factory=RetrySpec)
    batch_size: int = DEFAULT_BATCH_SIZE
    max_wait_ms: int = DEFAULT_MAX_WAIT_MS


def batch_settings(options: dict[str, Any] | None, destination: dict[str, Any]) -> BatchSettings:
    """The one reading of a stored pipeline's options (camelCase, as the API stored them)."""
    options = options or {}
    policy = (destination.get("config") or {}).get("retryPolicy") or {}
    return BatchSettings(
        retry=RetrySpec(
            max_retries=int(policy.get("maxRetries", DEFAULT_MAX_RETRIES)),
            backoff_ms=int(policy.get("backoffMs", DEFAULT_BACKOFF_MS)),
        ),
        batch_size=int(options.get("batchSize", DEFAULT_BATCH_SIZE)),
        max_wait_ms=int(options.get("maxWaitMs", DEFAULT_MAX_WAIT_MS)),
    )


def metrics_view(
    counters: Counters,
    *,
    committed_offset: int,
    status: str,
    last_error: str | None,
    last_error_at: int | None,
    live: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `metrics` JSON (the query's result and the stored fallback): counters, then `live`
    figures (throughput, latency, pending) when a workflow measured them."""
    return {
        "itemsProcessed": counters.processed,
        "itemsFailed": counters.failed,
        "itemsFiltered": counters.filtered,
        "itemsDelivered": counters.delivered,
        "deadLetters": counters.dead_lettered,
        **(live if live is not None else idle_figures()),
        "committedOffset": committed_offset,
        "status": status,
        "lastError": last_error,
        "lastErrorAt": last_error_at,
    }


def idle_figures() -> dict[str, Any]:
    """Throughput and latency of a pipeline that no workflow is measuring."""
    return {"throughput": 0.0, "latency": {"avg": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0}}


class CheckpointResult(BaseModel):
    """What the `create_checkpoint` update returns (JSON `{"id", "offset"}`)."""

    id: str
    offset: int


class RestoreResult(BaseModel):
    """What the `restore` update returns (JSON `{"offset"}`)."""

    offset: int


# --- the sources' workflows and activities -------------------------------------------------
class SourceRouterInput(BaseModel):
    cursor: int | None = None  # None: a brand-new router starts at the log's current end
    pass_seconds: float = 60.0
    idle_wait_s: float = 1.0
    passes_per_run: int = 200


class ScheduleTickInput(BaseModel):
    org_id: str
    pipeline_id: str
    payload: dict[str, Any] = Field(default_factory=dict)


class CurrentCursorInput(BaseModel):
    pass


class RouteSourcesInput(BaseModel):
    cursor: int  # the last event id already routed
    seconds: float = 60.0  # how long one activity keeps routing before handing back the cursor
    idle_wait_s: float = 1.0  # bounded LISTEN wait between passes when there is nothing to do


class RouteSourcesResult(BaseModel):
    cursor: int
    routed: int


class ScheduleTickActivityInput(BaseModel):
    org_id: str
    pipeline_id: str
    payload: dict[str, Any] = Field(default_factory=dict)
    scheduled_at: str  # ISO 8601; also the dedup key, so a retried tick adds nothing


# --- event-log retention --------------------------------------------------------------------
class RetentionInput(BaseModel):
    max_age_hours: float
