"""Pure helpers of the pipeline workflow: storing a chain state, the rolling metrics window.

The data that crosses processes (state, activity inputs/outputs) lives in
`deeployd.pipelines.contract` and is re-exported here. Safe to import inside the workflow sandbox.
"""

from __future__ import annotations

import json
import math
from typing import Any

# PipelineState and PipelineWorkflowInput are re-exported for older imports.
from deeployd.pipelines.contract import LatencySlot, PipelineState, PipelineWorkflowInput

INLINE_STATE_BYTES = 4 * 1024  # larger chain states travel by reference (history stays small)
PRUNE_EVERY = 20  # batches between deletions of processed items from the log
METRICS_WINDOW_S = 60
LATENCY_BASE = 1.2  # latency histogram buckets grow by 20%: percentiles within ~10%
LATENCY_BUCKETS = 90  # 1.2**90 ms ~ 4.5 days: every realistic latency has a bucket

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


__all__ = [
    "INLINE_STATE_BYTES",
    "METRICS_WINDOW_S",
    "PRUNE_EVERY",
    "PipelineState",
    "PipelineWorkflowInput",
    "latency_bucket",
    "load_chain_state",
    "store_chain_state",
    "summarize",
]
