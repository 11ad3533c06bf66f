"""Prompt cancellation of model streams.

Temporal delivers an activity's cancellation in the response to its next heartbeat, and the SDK
throttles heartbeats to 80% of the heartbeat timeout — seconds, not milliseconds. So the API,
right after requesting the workflow's cancellation, also sends
`NOTIFY deeployd_run_cancel, '<runId>'`; each worker holds one LISTEN connection (opened while it
has model calls in flight) and closes that run's provider stream at once. The model activity then
fails with a non-retryable `cancelled` error, which AgentRunWorkflow (already asked to cancel)
treats as the cancellation: the run ends `cancelled` within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

CANCEL_CHANNEL = "deeployd_run_cancel"
# Keep the LISTEN connection this long after the last stream ends (runs come in bursts).
_IDLE_CLOSE_S = 10.0


async def notify_cancel(pool: AsyncConnectionPool, run_id: str) -> None:
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", (CANCEL_CHANNEL, run_id))


class CancelWatcher:
    """One LISTEN per worker process; `watch(run_id)` yields an Event set on a cancel notice."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._events: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._idle_since: float | None = None

    @contextlib.asynccontextmanager
    async def watch(self, run_id: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self._events.setdefault(run_id, set()).add(event)
        if self._task is None or self._task.done():
            # Not awaited: the first token must not wait for this connection.
            self._task = asyncio.create_task(self._listen(), name="run-cancel-listener")
        try:
            yield event
        finally:
            watchers = self._events.get(run_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._events[run_id]

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    while True:
                        async for note in conn.notifies(timeout=5.0):
                            for event in self._events.get(note.payload, ()):
                                event.set()
                        if self._events:
                            self._idle_since = None
                        elif self._idle_since is None:
                            self._idle_since = loop.time()
                        elif loop.time() - self._idle_since > _IDLE_CLOSE_S:
                            return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("run-cancel LISTEN connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)
