"""Turning a run's tokens into A2A artifact chunks as they are published.

The A2A model-turn activity hands each token the run's stream publishes to an
`ArtifactChunker`, which publishes `artifactUpdate` events on `task:<taskId>` — coalesced to at
least `min_chars` characters or `max_delay_s` seconds, whichever comes first — so a reader
builds the answer incrementally without one event per token.
"""

from __future__ import annotations

import asyncio

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
