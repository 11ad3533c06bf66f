"""Wake-ups for new items: one LISTEN connection per worker process, fanned out per pipeline.

`ingest_items` NOTIFYs `deeployd_pipeline_items` with the pipeline id in the same transaction as
the append, so an activity waiting for its pipeline's next batch wakes the moment items commit —
no polling. Waits are bounded by the caller (≤ 2 s) so the workflow handles signals promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from deeployd.pglisten import listen_forever
from deeployd.pipelines.ingest import ITEMS_CHANNEL

log = logging.getLogger(__name__)


class ItemNotifier:
    def __init__(self, url: str) -> None:
        self._url = url
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._listen(), name="pipeline-item-notifier")

    def register(self, pipeline_id: str) -> asyncio.Event:
        """Register interest BEFORE checking the log, so a commit in between is not missed."""
        self._ensure_started()
        event = asyncio.Event()
        self._waiters.setdefault(pipeline_id, set()).add(event)
        return event

    def unregister(self, pipeline_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(pipeline_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[pipeline_id]

    async def wait_ready(self, limit_s: float) -> None:
        self._ensure_started()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), limit_s)

    async def _listen(self) -> None:
        def connected() -> None:
            self._ready.set()
            self._wake_all()  # anything committed while we were not listening

        def lost() -> None:
            self._ready.clear()
            self._wake_all()

        def notified(note: psycopg.Notify) -> None:
            for event in self._waiters.get(note.payload, ()):
                event.set()

        await listen_forever(
            self._url,
            [ITEMS_CHANNEL],
            notified,
            on_connected=connected,
            on_lost=lost,
            name="pipeline LISTEN",
        )

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
