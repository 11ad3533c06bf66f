"""The pipeline workflow's data: its state (= the checkpoint), activity inputs/outputs, and the
rolling metrics window. Pure pydantic, safe to import inside the workflow sandbox.
"""

from __future__ import annotations

import json
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
    # The chain state holds values PostgreSQL jsonb or Temporal's payloads cannot carry as they
    # are (NUL, lone surrogates, non-finite numbers) and was escaped by `store_chain_state`.
    chain_state_escaped: bool = False


# --- a chain state every store accepts ------------------------------------------------------
# Items may hold any JSON value, and stateful steps keep some of them (group values, min/max,
# buffered batch items). jsonb refuses "\u0000" and lone surrogates, pydantic refuses lone
# surrogates, jsonb refuses NaN/Infinity: such values are escaped into plain strings, reversibly.
_STR_MARK = "\ue000"  # a private-use character: "<mark><JSON string body, ASCII>"
_NUM_MARK = "\ue001"  # "<mark>inf", "<mark>-inf", "<mark>nan"
_MARKS = (_STR_MARK, _NUM_MARK)


def _storable_text(s: str) -> bool:
    if "\x00" in s or s.startswith(_MARKS):
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _escape(value: Any) -> Any:
    t = type(value)
    if t is str:
        if _storable_text(value):
            return value
        return _STR_MARK + json.dumps(value, ensure_ascii=True)[1:-1]
    if t is dict:
        return {_escape(k) if type(k) is str else k: _escape(v) for k, v in value.items()}
    if t is list:
        return [_escape(v) for v in value]
    if t is float and not math.isfinite(value):
        return _NUM_MARK + ("nan" if value != value else "inf" if value > 0 else "-inf")
    return value


def _unescape(value: Any) -> Any:
    t = type(value)
    if t is str:
        if value.startswith(_STR_MARK):
            return json.loads('"' + value[1:] + '"')
        if value.startswith(_NUM_MARK):
            return float(value[1:])
        return value
    if t is dict:
        return {_unescape(k): _unescape(v) for k, v in value.items()}
    if t is list:
        return [_unescape(v) for v in value]
    return value


def store_chain_state(chain_state: dict[str, Any]) -> tuple[dict[str, Any], bool, str]:
    """(the state as stored, whether it was escaped, its JSON text). The common case costs one
    `json.dumps` (the text is needed anyway to decide inline vs by reference)."""
    try:
        text = json.dumps(chain_state, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if "\\u0000" not in text:
            text.encode("utf-8")
            return chain_state, False, text
    except (ValueError, UnicodeEncodeError):
        pass
    escaped = _escape(chain_state)
    return escaped, True, json.dumps(escaped, separators=(",", ":"), ensure_ascii=False)


def load_chain_state(stored: dict[str, Any], escaped: bool) -> dict[str, Any]:
    """The chain state `store_chain_state` stored."""
    return _unescape(stored) if escaped else stored  # type: ignore[no-any-return]


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
    # `failed`: the workflow's own state, written back to the mirror (a batch that saved its
    # state before a delivery that never completed must be processed again on the next start)
    state: PipelineState | None = None


class SaveStateInput(BaseModel):
    org_id: str
    pipeline_id: str
    state: PipelineState
