"""What the API tells its observers about each request it answered (the `api_event` pipeline
source routes these into pipelines)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    route: str
    status: int
    latency_ms: float
    org_id: str | None
    key_prefix: str | None
    ts: float


RequestObserver = Callable[[RequestRecord], None]
