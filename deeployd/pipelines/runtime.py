"""The pipeline workflow's data: its state (= the checkpoint), activity inputs/outputs, and the
rolling metrics window. Pure pydantic, safe to import inside the workflow sandbox.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

CONTINUE_AS_NEW_EVERY = 500  # batches per run: ~3K history events, well inside the 10K budget
INLINE_STATE_BYTES = 4 * 1024  # larger chain states travel by reference (history stays small)
PRUNE_EVERY = 20  # batches between deletions of processed items from the log
METRICS_WINDOW_S = 60
LATENCY_BASE = 1.2  # latency histogram buckets grow by 20%: percentiles within ~10%
LATENCY_BUCKETS = 90  # 1.2**90 ms ~ 4.5 days: every realistic latency has a bucket


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


class RetrySpec(BaseModel):
    max_retries: int = 3
    backoff_ms: int = 1000


class LatencySlot(BaseModel):
    """One second of the metrics window."""

    second: int
    processed: int = 0
    count: int = 0
    total_ms: float = 0.0
    buckets: dict[int, int] = Field(default_factory=dict)


def latency_bucket(ms: float) -> int:
    if ms <= 1:
        return 0
    return min(LATENCY_BUCKETS, math.ceil(math.log(ms) / math.log(LATENCY_BASE)))


def bucket_upper_ms(index: int) -> float:
    return 1.0 if index == 0 else float(LATENCY_BASE**index)


def summarize(slots: list[LatencySlot], now_s: int, uptime_s: float) -> dict[str, Any]:
    """throughput (items/s over the last minute) and ingest->delivered latency percentiles."""
    recent = [s for s in slots if s.second > now_s - METRICS_WINDOW_S]
    processed = sum(s.processed for s in recent)
    span = max(1.0, min(float(METRICS_WINDOW_S), uptime_s))
    count = sum(s.count for s in recent)
    merged: dict[int, int] = {}
    for slot in recent:
        for key, value in slot.buckets.items():
            merged[int(key)] = merged.get(int(key), 0) + value

    def pct(q: float) -> float:
        if not count:
            return 0.0
        rank = q * count
        seen = 0
        for key in sorted(merged):
            seen += merged[key]
            if seen >= rank:
                return round(bucket_upper_ms(key), 1)
        return round(bucket_upper_ms(max(merged)), 1)

    return {
        "throughput": round(processed / span, 2),
        "latency": {
            "avg": round(sum(s.total_ms for s in recent) / count, 1) if count else 0.0,
            "p50": pct(0.5),
            "p95": pct(0.95),
            "p99": pct(0.99),
        },
    }


class PipelineWorkflowInput(BaseModel):
    org_id: str
    pipeline_id: str
    name: str
    source_type: str
    destination_type: str
    state: PipelineState = Field(default_factory=PipelineState)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    batch_size: int = 1000
    max_wait_ms: int = 1000
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
    batch_size: int = 1000
    max_wait_ms: int = 1000
    through_offset: int | None = None  # dead_letter: the batch the failed attempts covered
    error: str | None = None  # dead_letter: why delivery gave up
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
    batch_size: int = 1000
    max_wait_ms: int = 1000


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


class SaveStateInput(BaseModel):
    org_id: str
    pipeline_id: str
    state: PipelineState
