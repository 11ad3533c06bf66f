"""A pipeline's health verdict: `unhealthy` > `degraded` > `healthy`, with every reason.

Pure rules over what the service gathered (status, live metrics, dead letters), so the
thresholds live in one place and read as a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deeployd.models.pipeline import PipelineStatus

BACKPRESSURE_DEGRADED = 0.8  # pending / maxPending
RECENT_ERROR_MS = 5 * 60_000  # a delivery error this recent degrades the pipeline


@dataclass(frozen=True)
class Verdict:
    status: str  # healthy, degraded or unhealthy
    reasons: list[str]  # unhealthy ones first


def assess(
    *,
    status: str,
    error: str | None,
    workflow_missing: bool,
    metrics: dict[str, Any],
    waiting_dead_letters: int,
    now_ms: float,
) -> Verdict:
    """`workflow_missing`: the pipeline is running or paused but its workflow is not."""
    unhealthy: list[str] = []
    degraded: list[str] = []
    if status == PipelineStatus.failed:
        unhealthy.append(f"pipeline failed: {error or 'unknown error'}")
    if workflow_missing:
        unhealthy.append("the pipeline's workflow is not running")
    backpressure = metrics["backpressure"]
    if backpressure >= 1:
        unhealthy.append("backpressure: pending items reached maxPending, ingest is refused")
    elif backpressure >= BACKPRESSURE_DEGRADED:
        degraded.append(f"backpressure {backpressure:.2f}: the pipeline is falling behind")
    last_error_at = metrics.get("lastErrorAt")
    if last_error_at and now_ms - last_error_at < RECENT_ERROR_MS:
        degraded.append(f"delivery failing: {metrics.get('lastError')}")
    if waiting_dead_letters:
        degraded.append(f"{waiting_dead_letters} dead letter(s) waiting for replay")
    if status == PipelineStatus.paused:
        degraded.append("paused: items are accepted but not delivered")
    verdict = "unhealthy" if unhealthy else "degraded" if degraded else "healthy"
    return Verdict(verdict, unhealthy + degraded)
