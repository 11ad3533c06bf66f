"""Turning a run's `token` events into A2A artifact chunks as they are published.

`TeePublisher` stands in for the event publisher of an agent-run activity executed inside an
A2A task: every event still goes to the log unchanged, and the run's tokens are also fed to an
`ArtifactChunker`, which publishes `artifactUpdate` events on `task:<taskId>` — coalesced to at
least `min_chars` characters or `max_delay_s` seconds, whichever comes first — so a reader
builds the answer incrementally without one event per token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from deeployd.a2a.events import ARTIFACT_UPDATE, artifact_data, task_stream
from deeployd.eventlog import EventPublisher

MIN_CHUNK_CHARS = 20
MAX_CHUNK_DELAY_S = 0.05
ANSWER_ARTIFACT_NAME = "answer"


class ArtifactChunker:
    def __init__(
        self,
        publisher: EventPublisher,
        *,
        org_id: str,
        task_id: str,
        context_id: str,
        artifact_id: str,
        name: str = ANSWER_ARTIFACT_NAME,
        started: bool = False,
        min_chars: int = MIN_CHUNK_CHARS,
        max_delay_s: float = MAX_CHUNK_DELAY_S,
    ) -> None:
        self._publisher = publisher
        self._org_id = org_id
        self._task_id = task_id
        self._context_id = context_id
        self._artifact_id = artifact_id
        self._name = name
        self.started = started  # a first chunk was published: the next ones append
        self._min_chars = min_chars
        self._max_delay_s = max_delay_s
        self._buffer: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, text: str) -> None:
        if not text:
            return
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= self._min_chars:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_delay_s, self.flush)

    def flush(self) -> None:
        """Publish what is buffered as one chunk (without waiting for it to be committed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        chunk = "".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        artifact = {"artifactId": self._artifact_id, "name": self._name, "parts": [{"text": chunk}]}
        self._publisher.publish_nowait(
            self._org_id,
            task_stream(self._task_id),
            ARTIFACT_UPDATE,
            artifact_data(
                self._task_id,
                self._context_id,
                artifact,
                chunk=chunk,
                append=self.started,
                last_chunk=False,
            ),
        )
        self.started = True


Listener = Callable[[str, dict[str, Any]], None]


class TeePublisher:
    """An `EventPublisher` look-alike that also hands the events of watched streams to their
    listeners (one per stream, registered for the duration of an activity)."""

    def __init__(self, inner: EventPublisher) -> None:
        self._inner = inner
        self._listeners: dict[str, Listener] = {}

    @contextlib.contextmanager
    def watch(self, stream: str, listener: Listener) -> Iterator[None]:
        self._listeners[stream] = listener
        try:
            yield
        finally:
            if self._listeners.get(stream) is listener:
                del self._listeners[stream]

    def publish_nowait(
        self, org_id: str, stream: str, event_type: str, data: dict[str, Any] | None = None
    ) -> asyncio.Future[int]:
        future = self._inner.publish_nowait(org_id, stream, event_type, data)
        listener = self._listeners.get(stream)
        if listener is not None:
            with contextlib.suppress(Exception):  # a tee must never break the run's own stream
                listener(event_type, data or {})
        return future

    async def publish(
        self, org_id: str, stream: str, event_type: str, data: dict[str, Any] | None = None
    ) -> int:
        return await self.publish_nowait(org_id, stream, event_type, data)

    async def publish_many(self, events: Any) -> list[int]:
        futures = [self.publish_nowait(*event) for event in events]
        return list(await asyncio.gather(*futures))

    async def flush(self) -> None:
        await self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
