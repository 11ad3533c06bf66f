"""Errors the pipeline log raises; the API maps them to 404 and 429."""

from __future__ import annotations


class PipelineNotFound(LookupError):
    """No pipeline with that id in that organisation (another org's pipeline is 'not found' too)."""

    def __init__(self, pipeline_id: str) -> None:
        super().__init__(f"pipeline {pipeline_id} not found")
        self.pipeline_id = pipeline_id


class BackpressureExceeded(RuntimeError):
    """The pipeline has more pending items than `options.maxPending`: the caller should retry."""

    def __init__(self, pending: int, max_pending: int, retry_after_s: float) -> None:
        super().__init__(
            f"pipeline has {pending} pending items (maxPending {max_pending}); retry later"
        )
        self.pending = pending
        self.max_pending = max_pending
        self.retry_after_s = retry_after_s
