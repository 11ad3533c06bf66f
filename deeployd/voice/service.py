"""The voice pipeline: sentences -> synthesis (off the loop) -> encoder -> bounded queue -> HTTP.

Synthesis runs one sentence ahead at a time in a producer task; encoded sentences wait in a
bounded queue (`voice_queue_chunks`), so a client that reads slowly pauses synthesis instead of
growing a buffer. A disconnect sets the stream's cancel flag, which the eSpeak callback honours
mid-sentence, and cancels the producer. Usage is written once, when the stream ends or is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from deeployd.db import Database
from deeployd.ids import new_id
from deeployd.models.voice import VoiceUsage
from deeployd.voice.encoders import StreamEncoder
from deeployd.voice.engine import SynthesisCancelled
from deeployd.voice.providers import SentenceSynthesizer

log = logging.getLogger(__name__)

_END = object()


class OrgLimiter:
    """Concurrent audio streams per organisation (in this API process)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}

    def active(self, org_id: str) -> int:
        return self._active.get(org_id, 0)

    def try_acquire(self, org_id: str) -> bool:
        if self._active.get(org_id, 0) >= self.limit:
            return False
        self._active[org_id] = self._active.get(org_id, 0) + 1
        return True

    def release(self, org_id: str) -> None:
        count = self._active.get(org_id, 0) - 1
        if count > 0:
            self._active[org_id] = count
        else:
            self._active.pop(org_id, None)


@dataclass
class UsageRecord:
    org_id: str
    source: str
    provider: str
    voice: str
    format: str
    requested_characters: int
    run_id: str | None = None
    characters: int = 0
    audio_ms: int = 0
    completed: bool = False


async def record_usage(db: Database, usage: UsageRecord) -> None:
    async with db.session() as session:
        session.add(
            VoiceUsage(
                id=new_id("vu"),
                org_id=usage.org_id,
                source=usage.source,
                run_id=usage.run_id,
                provider=usage.provider,
                voice=usage.voice,
                format=usage.format,
                characters=usage.characters,
                requested_characters=usage.requested_characters,
                audio_ms=usage.audio_ms,
                completed=usage.completed,
            )
        )
        await session.commit()


class AudioSource:
    """What an `AudioStreamResponse` plays: chunks, a cancel, and a final accounting step."""

    usage: UsageRecord

    def chunks(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop everything still running; called exactly once, whatever happened."""


@dataclass(eq=False)
class SynthesisStream(AudioSource):
    """Sentences -> PCM -> one continuous encoded stream, with a bounded queue in between."""

    usage: UsageRecord
    sentences: AsyncIterator[str]
    synthesizer: SentenceSynthesizer
    encoder: StreamEncoder
    queue_size: int = 4
    cancelled: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max(1, self.queue_size))
        self._producer: asyncio.Task[None] | None = None
        # FFmpeg contexts must not be closed while a worker thread is still encoding into them.
        self._encoder_lock = threading.Lock()

    def _encode(self, pcm: bytes) -> bytes:
        with self._encoder_lock:
            return self.encoder.encode(pcm)

    def _finish(self) -> bytes:
        with self._encoder_lock:
            return self.encoder.finish()

    def _release(self) -> None:
        with self._encoder_lock:
            self.encoder.close()

    async def _produce(self) -> None:
        try:
            async for sentence in self.sentences:
                if self.cancelled.is_set():
                    return
                pcm = await self.synthesizer.synthesize(sentence, self.cancelled)
                self.usage.characters += len(sentence)
                data = await asyncio.to_thread(self._encode, pcm)
                if data:
                    await self._queue.put(data)  # blocks when the client reads slowly
            if self.encoder.samples_in == 0:
                # Text the engine found nothing to say in (e.g. only punctuation) still gets a
                # short, decodable stream rather than an empty body.
                silence = bytes(2 * (self.encoder.source_rate // 10))
                data = await asyncio.to_thread(self._encode, silence)
                if data:
                    await self._queue.put(data)
            tail = await asyncio.to_thread(self._finish)
            if tail:
                await self._queue.put(tail)
            self.usage.completed = True
        except SynthesisCancelled:
            return
        except Exception:
            log.exception("voice synthesis failed; cutting the stream")
        await self._queue.put(_END)

    async def chunks(self) -> AsyncIterator[bytes]:
        self._producer = asyncio.create_task(self._produce(), name="voice-synthesis")
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            yield item

    def cancel(self) -> None:
        self.cancelled.set()
        if self._producer is not None:
            self._producer.cancel()

    async def close(self) -> None:
        self.cancel()
        if self._producer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._producer
        closer = getattr(self.sentences, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        await asyncio.to_thread(self._release)
        self.usage.audio_ms = round(self.encoder.duration_s * 1000)


@dataclass(eq=False)
class PassThroughStream(AudioSource):
    """A provider's own stream, relayed chunk by chunk as it arrives."""

    usage: UsageRecord
    upstream: AsyncIterator[bytes]

    def __post_init__(self) -> None:
        self._iterator = self.upstream

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._iterator:
            yield chunk
        # The provider synthesised (and bills) the whole text once it finished streaming.
        self.usage.characters = self.usage.requested_characters
        self.usage.completed = True

    def cancel(self) -> None:
        pass

    async def close(self) -> None:
        closer = getattr(self._iterator, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()


class AudioStreamResponse(Response):
    """Streams an `AudioSource`, watches for the client going away, and always accounts.

    A plain StreamingResponse only notices a disconnect on its next write and leaves the
    generator to the garbage collector; here the disconnect cancels synthesis at once and the
    usage row is written (shielded from cancellation) before the request ends."""

    def __init__(
        self,
        source: AudioSource,
        *,
        media_type: str,
        headers: dict[str, str],
        on_close: Callable[[AudioSource], Awaitable[None]],
    ) -> None:
        # Like StreamingResponse: no body attribute, so no Content-Length header (chunked).
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)
        self.source = source
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def pump() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.source.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        pumping = asyncio.create_task(pump(), name="voice-send")
        watcher = asyncio.create_task(watch(), name="voice-disconnect-watch")
        try:
            await asyncio.wait({pumping, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not pumping.done():  # the client went away: stop synthesising now
                self.source.cancel()
                pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pumping
        finally:
            watcher.cancel()
            pumping.cancel()
            self.source.cancel()
            # Accounting must survive the request task being cancelled (client gone, shutdown).
            await asyncio.shield(self._close())

    async def _close(self) -> None:
        try:
            await self.source.close()
        finally:
            await self.on_close(self.source)
