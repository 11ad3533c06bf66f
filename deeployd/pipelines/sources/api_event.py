"""The `api_event` source: the API's own request activity, fed to an organisation's pipelines.

`install(app)` registers a request observer (api/main.py calls it once). The observer only
appends to a bounded in-memory buffer — it runs inside the request path and must never block or
fail a request. A background task flushes the buffer every `FLUSH_INTERVAL_S` (200 ms): it looks
up the organisation's running/paused `api_event` pipelines (cached for `PIPELINES_TTL_S`), keeps
the records that match each pipeline's `paths` (glob patterns) and `methods`, and ingests them
in one append per pipeline.

Choices, documented in docs/pipeline-sources-and-destinations.md:
- Requests without an authenticated organisation (401s, /health, /metrics) are not routed: there
  is no organisation to route them to.
- A pipeline never receives the requests made to its own URLs (`/api/streaming/pipelines/<its
  id>/...`), so pushing items into an api_event pipeline cannot feed back into itself.
- Delivery is at most once: records still buffered when the API process dies are lost, and when
  the buffer is full (`MAX_BUFFER` records, e.g. the database is down) new records are dropped and
  counted (`dropped`). Audit trails that must be complete belong in a `webhook` source fed by the
  caller instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import re
import time
import uuid
import weakref
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from deeployd.pipelines.sources.common import SourceModel, parse_source
from deeployd.pipelines.sources.plugin import PipelineSource, SourceType, source_type
from deeployd.pipelines.transforms.errors import ConfigError
from deeployd.request_log import RequestRecord

if TYPE_CHECKING:
    from deeployd.services import Services

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.2
MAX_BUFFER = 10_000
PIPELINES_TTL_S = 2.0
_OWN_URL = re.compile(r"^/api/streaming/pipelines/([^/]+)(?:/|$)")

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class ApiEventSource(SourceModel):
    type: Literal["api_event"]
    paths: list[str] | None = Field(default=None, min_length=1, max_length=100)
    methods: list[Method] | None = Field(default=None, min_length=1)


def validate(source: dict[str, Any]) -> None:
    parsed = parse_source(ApiEventSource, source)
    for index, pattern in enumerate(parsed.paths or []):
        if not pattern.startswith("/") or len(pattern) > 500:
            raise ConfigError(("paths", index), "must be a path or glob starting with '/'")


def path_matches(patterns: list[str] | None, path: str) -> bool:
    """Glob match (`*` also crosses '/': `/api/streaming/*` covers every streaming URL)."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def wants(source: dict[str, Any], pipeline_id: str, record: RequestRecord) -> bool:
    own = _OWN_URL.match(record.path)
    if own is not None and own.group(1) == pipeline_id:
        return False
    methods = source.get("methods")
    if methods and record.method.upper() not in methods:
        return False
    return path_matches(source.get("paths"), record.path)


def item_for(record: RequestRecord) -> dict[str, Any]:
    return {
        "method": record.method,
        "path": record.path,
        "route": record.route,
        "status": record.status,
        "orgId": record.org_id,
        "keyPrefix": record.key_prefix,
        "latencyMs": record.latency_ms,
        "ts": datetime.fromtimestamp(record.ts, UTC).isoformat(timespec="milliseconds"),
    }


_ROUTERS: weakref.WeakSet[ApiEventRouter] = weakref.WeakSet()


def invalidate(org_id: str) -> None:
    """Forget this process's cached pipeline list for an org (a pipeline started or stopped).

    Other API processes pick the change up within PIPELINES_TTL_S.
    """
    for router in list(_ROUTERS):
        router.forget(org_id)


@source_type("api_event")
class ApiEvent(SourceType):
    def validate(self, source: dict[str, Any]) -> None:
        validate(source)

    async def on_started(self, pipeline: PipelineSource) -> None:
        invalidate(pipeline.org_id)

    async def on_stopped(self, pipeline: PipelineSource) -> None:
        invalidate(pipeline.org_id)


class ApiEventRouter:
    """Buffers request records (bounded) and flushes them to matching pipelines in batches."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._buffer: deque[tuple[str, RequestRecord]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pipelines: dict[str, tuple[float, list[Any]]] = {}
        self._uncached_until: dict[str, float] = {}
        self._closed = False
        self.dropped = 0
        self.routed = 0
        _ROUTERS.add(self)

    def forget(self, org_id: str) -> None:
        # The pipeline's status commits after the hook runs, so look up afresh on every flush
        # for a few seconds instead of caching a list that is about to change.
        self._pipelines.pop(org_id, None)
        self._uncached_until[org_id] = time.monotonic() + 5.0

    def observe(self, record: RequestRecord) -> None:
        if self._closed or record.org_id is None:
            return
        if len(self._buffer) >= MAX_BUFFER:
            self.dropped += 1
            return
        # A key per record: a flush retried after a partial failure appends nothing twice.
        self._buffer.append((f"api:{uuid.uuid4().hex}", record))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="api-event-source"
            )

    async def close(self) -> None:
        """Flush what is buffered (best effort) and stop."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=5)

    async def _run(self) -> None:
        delay = FLUSH_INTERVAL_S
        while True:
            await asyncio.sleep(delay)
            try:
                await self.flush()
                delay = FLUSH_INTERVAL_S
            except asyncio.CancelledError:
                raise
            except Exception:
                # e.g. the database is down: keep the (bounded) buffer, back off up to 5 s.
                log.warning("api_event flush failed; will retry", exc_info=True)
                delay = min(delay * 2, 5.0)

    async def _pipelines_of(self, org_id: str) -> list[Any]:
        from deeployd.pipelines.ingest import pipelines_with_source

        now = time.monotonic()
        cached = self._pipelines.get(org_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        refs = await pipelines_with_source(self._services.db, org_id, "api_event")
        if self._uncached_until.get(org_id, 0.0) <= now:
            self._uncached_until.pop(org_id, None)
            self._pipelines[org_id] = (now + PIPELINES_TTL_S, refs)
        if len(self._pipelines) > 10_000:  # bound the caches too
            self._pipelines.clear()
        if len(self._uncached_until) > 10_000:
            self._uncached_until.clear()
        return refs

    async def flush(self) -> None:
        from deeployd.pipelines.errors import BackpressureExceeded, PipelineNotFound
        from deeployd.pipelines.ingest import ingest_items

        if not self._buffer:
            return
        records = list(self._buffer)
        by_org: dict[str, list[tuple[str, RequestRecord]]] = {}
        for key, record in records:
            by_org.setdefault(record.org_id or "", []).append((key, record))
        for org_id, org_records in by_org.items():
            for ref in await self._pipelines_of(org_id):
                batch = [(k, r) for k, r in org_records if wants(ref.source, ref.id, r)]
                if not batch:
                    continue
                try:
                    await ingest_items(
                        self._services.db,
                        org_id,
                        ref.id,
                        [item_for(r) for _, r in batch],
                        dedup_keys=[k for k, _ in batch],
                    )
                    self.routed += len(batch)
                except PipelineNotFound:
                    self._pipelines.pop(org_id, None)
                except BackpressureExceeded:
                    # The pipeline is behind: its API activity is dropped rather than buffered
                    # without bound (counted, visible in logs).
                    self.dropped += len(batch)
                    log.warning(
                        "api_event: pipeline %s is backpressured; dropped %d", ref.id, len(batch)
                    )
        # Only now forget them: a failed flush (DB down) retries the same records next time.
        for _ in range(len(records)):
            self._buffer.popleft()
