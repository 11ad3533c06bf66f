"""The one SSE helper every stream endpoint uses.

Wire format: `id:` is the event-log id, no `event:` name (so a browser's `onmessage` sees
everything), `data:` is a JSON object with a `type`. A reader resumes with the `Last-Event-ID`
header (or `?lastEventId=`): stored events are replayed from the log, then the stream switches
to live delivery with no gap and no duplicate. A reconnect to a stream that has already ended is
answered 204 (see `api.sse_ended`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Header, Query
from fastapi.exceptions import RequestValidationError
from psycopg_pool import AsyncConnectionPool
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Receive, Scope, Send

from api.sse_ended import EndedStreams
from deeployd import metrics
from deeployd.eventlog import EventBus, EventFilter, StoredEvent, Subscription, replay
from deeployd.revocation import KEY_RECHECK_SECONDS, KeyCheck, KeyRevoked, revocable

log = logging.getLogger(__name__)

_FRAMES_PER_SEND = 256
UNAUTHORIZED_FRAME = {
    "type": "error",
    "code": "unauthorized",
    "message": "the API key was revoked",
}

# `await key_check(key_id)`: is this API key still valid?


def encode_frame(event: StoredEvent) -> bytes:
    # Encoded once per event and cached on it: every subscriber sends the same bytes object.
    return event.sse_frame()


def encode_control(payload: dict[str, Any]) -> bytes:
    """A frame without an id (errors, notices): it does not move the client's resume point."""
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _parse_event_id(value: str, where: tuple[str, str]) -> int:
    try:
        parsed = int(value)
    except ValueError:
        parsed = -1
    if parsed < 0:
        raise RequestValidationError(
            [{"loc": where, "msg": "must be a non-negative event id", "type": "value_error"}]
        )
    return parsed


def last_event_id(
    header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    query: Annotated[str | None, Query(alias="lastEventId")] = None,
) -> int | None:
    """The resume point a reader sent, from the header (browsers) or the query (scripts)."""
    if header:
        return _parse_event_id(header, ("header", "Last-Event-ID"))
    if query:
        return _parse_event_id(query, ("query", "lastEventId"))
    return None


class _EventSourceResponse(EventSourceResponse):
    """sse-starlette's response, minus one cost on the hot path.

    Every chunk goes through `_send_with_timeout`, which opens an anyio cancel scope even when
    no send timeout is set (ours never is). With 1,000 readers that scope is a large share of
    the CPU per delivery, so without a timeout we send directly; with one, the library's
    behaviour is kept. Slow readers are still cut off by the bounded mailbox (see `_live`).
    """

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)

    key_check: KeyCheck | None = None
    recheck_seconds: float = KEY_RECHECK_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The principal the auth dependency stored on the request (`request.state.principal`).
        principal = scope.get("state", {}).get("principal")
        key_id = getattr(principal, "key_id", None)
        if self.key_check is not None and key_id:
            self.body_iterator = until_revoked(
                self.body_iterator, key_id, self.key_check, self.recheck_seconds
            )
        await super().__call__(scope, receive, send)


async def until_revoked(
    frames: AsyncIterable[Any], key_id: str, key_check: KeyCheck, every: float
) -> AsyncIterator[Any]:
    """`frames`, until the key is revoked: then one `unauthorized` error frame (no id) and the end."""
    try:
        async with contextlib.aclosing(revocable(frames, key_id, key_check, every)) as checked:
            async for frame in checked:
                yield frame
    except KeyRevoked:
        yield encode_control(UNAUTHORIZED_FRAME)


class EventStreamer:
    """Builds resumable SSE responses over the process's event bus."""

    def __init__(
        self,
        bus: EventBus,
        pool: AsyncConnectionPool,
        *,
        ping_seconds: float = 15.0,
        retry_ms: int = 3000,
        key_check: KeyCheck | None = None,
        recheck_seconds: float = KEY_RECHECK_SECONDS,
    ) -> None:
        self.bus = bus
        self.pool = pool
        self.ping_seconds = ping_seconds
        self.retry_ms = retry_ms
        # Who was already sent the end of which finished stream (answers their reconnects 204).
        self.ended = EndedStreams()
        self.key_check = key_check
        self.recheck_seconds = recheck_seconds

    def sse(
        self, frames: AsyncIterator[Any], *, headers: dict[str, str] | None = None
    ) -> EventSourceResponse:
        """An SSE response over `frames`; it ends when the caller's API key is revoked."""
        response = _EventSourceResponse(frames, ping=self.ping_seconds, headers=headers)
        response.key_check = self.key_check
        response.recheck_seconds = self.recheck_seconds
        return response

    def response(
        self,
        flt: EventFilter,
        *,
        resume_after: int | None,
        stop_when: Callable[[StoredEvent], bool] | None = None,
        headers: dict[str, str] | None = None,
    ) -> EventSourceResponse:
        """`resume_after=None` streams live events only; an id replays everything after it."""
        return self.sse(
            self.frames(flt, resume_after=resume_after, stop_when=stop_when), headers=headers
        )

    async def frames(
        self,
        flt: EventFilter,
        *,
        resume_after: int | None,
        stop_when: Callable[[StoredEvent], bool] | None = None,
    ) -> AsyncIterator[bytes | ServerSentEvent]:
        # Subscribe before replaying so nothing committed in between is missed.
        sub = self.bus.subscribe(flt)
        metrics.SSE_SUBSCRIBERS.inc()
        try:
            yield ServerSentEvent(comment="connected", retry=self.retry_ms)
            last = 0
            if resume_after is not None:
                last = resume_after
                while True:
                    chunk: list[bytes] = []
                    async for event in replay(self.pool, flt, after=last):
                        chunk.append(encode_frame(event))
                        last = event.id
                        if stop_when is not None and stop_when(event):
                            yield b"".join(chunk)
                            return
                        if len(chunk) >= _FRAMES_PER_SEND:
                            yield b"".join(chunk)
                            chunk = []
                    if chunk:
                        yield b"".join(chunk)
                    if not sub.overflowed:
                        break
                    # The live mailbox filled while we replayed: start it afresh and replay on.
                    sub = self._resubscribe(sub, flt)
            async for chunk_text, done in self._live(sub, last, stop_when):
                yield chunk_text
                if done:
                    return
        finally:
            self.bus.unsubscribe(sub)
            metrics.SSE_SUBSCRIBERS.dec()

    def _resubscribe(self, sub: Subscription, flt: EventFilter) -> Subscription:
        self.bus.unsubscribe(sub)
        return self.bus.subscribe(flt)

    async def _live(
        self, sub: Subscription, last: int, stop_when: Callable[[StoredEvent], bool] | None
    ) -> AsyncIterator[tuple[bytes, bool]]:
        while True:
            await sub.wait()
            frames: list[bytes] = []
            for event in sub.drain(_FRAMES_PER_SEND):
                if event.id <= last:
                    continue  # already sent during replay
                frames.append(encode_frame(event))
                last = event.id
                if stop_when is not None and stop_when(event):
                    yield b"".join(frames), True
                    return
            if frames:
                yield b"".join(frames), False
            if sub.empty():
                if sub.overflowed:
                    metrics.SSE_SLOW_CONSUMERS.inc()
                    yield (
                        encode_control(
                            {
                                "type": "error",
                                "code": "slow_consumer",
                                "message": "reader fell too far behind; reconnect with "
                                f"Last-Event-ID: {last} to resume",
                            }
                        ),
                        True,
                    )
                    return
                if sub.closed:
                    return
