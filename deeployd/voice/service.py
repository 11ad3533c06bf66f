"""The voice pipeline: sentences -> synthesis (off the loop) -> encoder -> bounded queue -> caller.

Synthesis runs one sentence ahead at a time in a producer task; encoded sentences wait in a
bounded queue (`voice_queue_chunks`), so a client that reads slowly pauses synthesis instead of
growing a buffer. A disconnect sets the stream's cancel flag, which the eSpeak callback honours
mid-sentence, and cancels the producer. Usage is written once, when the stream ends or is cut.

`VoiceService` checks a request (Invalid naming each bad field, NotFound for another
organisation's run, TooManyStreams past the per-organisation limit) and opens a `VoiceStream`:
the audio chunks and what the caller needs to describe them. It knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from deeployd.db import Database
from deeployd.errors import DomainError, FieldError, Invalid, NotFound
from deeployd.eventlog import EventBus
from deeployd.models.voice import TTSRequest
from deeployd.settings import Settings
from deeployd.voice.encoders import FORMATS, StreamEncoder
from deeployd.voice.engine import PRESETS, SynthesisCancelled
from deeployd.voice.providers import (
    PROVIDERS,
    EngineChoiceError,
    OpenAIPcmSynthesizer,
    OpenAISpeech,
    SentenceSynthesizer,
    embedded_synthesizer,
    openai_voices,
    resolve_engine,
    stream_through,
)
from deeployd.voice.runs import RunText, find_run
from deeployd.voice.store import UsageRecord, record_usage
from deeployd.voice.text import clean, split_sentences

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


class AudioSource:
    """What a `VoiceStream` plays: chunks, a cancel, and a final accounting step."""

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


DEFAULT_LANGUAGE = "en-us"


class TooManyStreams(DomainError):
    """The organisation already has its limit of concurrent audio streams open."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} concurrent voice streams per organisation")
        self.limit = limit


@dataclass(eq=False)
class VoiceStream:
    """An open audio stream: its chunks, what they are, and one `close()` that stops whatever
    still runs and does the accounting (call it exactly once, whatever happened)."""

    source: AudioSource
    format: str
    sample_rate: int | None
    provider: str
    engine: str | None = None
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def org_id(self) -> str:
        return self.source.usage.org_id

    @property
    def media_type(self) -> str:
        return FORMATS[self.format].content_type(self.sample_rate or 24000)

    def chunks(self) -> AsyncIterator[bytes]:
        return self.source.chunks()

    def cancel(self) -> None:
        self.source.cancel()

    async def close(self) -> None:
        try:
            await self.source.close()
        finally:
            for step in reversed(self.on_close):
                await step()


@dataclass(frozen=True)
class SpeechOptions:
    """How to speak: the fields a TTS body and a run-speech query share."""

    voice: str
    format: str
    speed: float = 1.0
    provider: str | None = None
    engine: str | None = None  # embedded provider: piper | espeak
    language: str | None = None


@dataclass(frozen=True)
class VoiceChoice:
    provider: str
    engine: str | None  # the embedded provider's engine


def check_choice(
    settings: Settings, root: str, opts: SpeechOptions, errors: list[FieldError]
) -> VoiceChoice:
    """Validate voice/format/provider/engine/language, adding located errors to `errors`."""
    voice, fmt, engine, language = opts.voice, opts.format, opts.engine, opts.language
    chosen = opts.provider or settings.voice_default_provider

    def bad(name: str, msg: str) -> None:
        errors.append(FieldError((root, name), msg))

    if chosen not in PROVIDERS:
        bad("provider", f"unknown provider {chosen!r}; one of {', '.join(PROVIDERS)}")
        return VoiceChoice(chosen, None)
    allowed = list(PRESETS) if chosen == "embedded" else openai_voices(settings)
    if voice not in allowed:
        bad("voice", f"unknown voice {voice!r} for {chosen}; one of {', '.join(allowed)}")
    if fmt not in FORMATS:
        bad("format", f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if chosen != "embedded":
        for name, value in (("engine", engine), ("language", language)):
            if value is not None:
                bad(name, f"{name} is only used by the embedded provider")
        return VoiceChoice(chosen, None)
    try:
        return VoiceChoice(
            chosen,
            resolve_engine(engine, language or DEFAULT_LANGUAGE, settings.voice_default_engine),
        )
    except EngineChoiceError as exc:
        bad(exc.field, str(exc))
        return VoiceChoice(chosen, None)


def _refuse(errors: Sequence[FieldError]) -> None:
    if errors:
        raise Invalid.of(errors)


def _speech_http() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=120.0))


async def _aiter(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


class VoiceService:
    """Opens the organisation's audio streams; `limiter` counts them (one per API process)."""

    def __init__(
        self, settings: Settings, db: Database, bus: EventBus | None, limiter: OrgLimiter
    ) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.limiter = limiter

    def _acquire(self, org_id: str) -> None:
        if not self.limiter.try_acquire(org_id):
            raise TooManyStreams(self.limiter.limit)

    def _stream(
        self, source: AudioSource, choice: VoiceChoice, fmt: str, rate: int | None
    ) -> VoiceStream:
        org_id = source.usage.org_id

        async def account() -> None:
            self.limiter.release(org_id)
            await record_usage(self.db, source.usage)

        return VoiceStream(source, fmt, rate, choice.provider, choice.engine, [account])

    def _embedded(self, choice: VoiceChoice, opts: SpeechOptions) -> SentenceSynthesizer:
        assert choice.engine is not None
        return embedded_synthesizer(
            choice.engine,
            opts.voice,
            opts.language or DEFAULT_LANGUAGE,
            opts.speed,
            piper_workers=self.settings.voice_piper_workers,
        )

    def _synthesis(
        self,
        usage: UsageRecord,
        sentences: AsyncIterator[str],
        synthesizer: SentenceSynthesizer,
        fmt: str,
    ) -> SynthesisStream:
        return SynthesisStream(
            usage=usage,
            sentences=sentences,
            synthesizer=synthesizer,
            encoder=StreamEncoder(FORMATS[fmt], synthesizer.sample_rate),
            queue_size=self.settings.voice_queue_chunks,
        )

    async def open_tts(self, org_id: str, body: TTSRequest) -> VoiceStream:
        """Speak `body.text`. Raises Invalid, TooManyStreams, or ProviderError (the provider
        refused or failed)."""
        settings = self.settings
        errors: list[FieldError] = []
        text = body.text
        if not text.strip():
            errors.append(FieldError(("body", "text"), "text must not be empty"))
        elif not clean(text).strip():
            errors.append(
                FieldError(("body", "text"), "text has nothing to speak (only control characters)")
            )
        elif len(text) > settings.voice_max_chars:
            errors.append(
                FieldError(
                    ("body", "text"),
                    f"text is {len(text)} characters; the maximum is {settings.voice_max_chars}",
                )
            )
        opts = SpeechOptions(
            body.voice, body.format, body.speed, body.provider, body.engine, body.language
        )
        choice = check_choice(settings, "body", opts, errors)
        _refuse(errors)
        usage = UsageRecord(
            org_id=org_id,
            source="tts",
            provider=choice.provider,
            voice=body.voice,
            format=body.format,
            requested_characters=len(text),
        )
        self._acquire(org_id)
        try:
            if choice.provider == "embedded":
                synthesizer = self._embedded(choice, opts)
                source: AudioSource = self._synthesis(
                    usage, _aiter(split_sentences(text)), synthesizer, body.format
                )
                rate: int | None = FORMATS[body.format].output_rate(synthesizer.sample_rate)
            else:
                source, rate = await self._openai_passthrough(usage, body)
        except BaseException:
            self.limiter.release(org_id)
            raise
        return self._stream(source, choice, body.format, rate)

    async def _openai_passthrough(
        self, usage: UsageRecord, body: TTSRequest
    ) -> tuple[AudioSource, int | None]:
        http = _speech_http()
        try:
            response = await OpenAISpeech(self.settings).open_stream(
                http,
                text=body.text,
                voice=body.voice,
                response_format=body.format,
                speed=body.speed,
            )
        except BaseException:
            await http.aclose()
            raise

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream_through(response):
                    yield chunk
            finally:
                await http.aclose()

        rate = self.settings.openai_tts_pcm_rate if body.format == "pcm" else None
        return PassThroughStream(usage=usage, upstream=relay()), rate

    async def open_run_speech(self, org_id: str, run_id: str, opts: SpeechOptions) -> VoiceStream:
        """Speak a run's answer while it is written. Raises Invalid, NotFound, TooManyStreams."""
        settings = self.settings
        errors: list[FieldError] = []
        choice = check_choice(settings, "query", opts, errors)
        _refuse(errors)
        if self.bus is None:
            raise RuntimeError("the event bus is not running in this process")
        text = RunText(
            self.bus,
            self.db.pool,
            org_id,
            run_id,
            idle_seconds=settings.voice_run_idle_seconds,
            max_chars=settings.voice_run_max_chars,
        )
        try:
            run = await find_run(self.db.pool, org_id, run_id)
            if not run.exists:
                raise NotFound("run not found")
            self._acquire(org_id)
        except BaseException:
            text.close()
            raise
        http: httpx.AsyncClient | None = None
        try:
            synthesizer: SentenceSynthesizer
            if choice.provider == "embedded":
                synthesizer = self._embedded(choice, opts)
            else:
                http = _speech_http()
                synthesizer = OpenAIPcmSynthesizer(
                    OpenAISpeech(settings), http, opts.voice, opts.speed
                )
            usage = UsageRecord(
                org_id=org_id,
                source="run",
                run_id=run_id,
                provider=choice.provider,
                voice=opts.voice,
                format=opts.format,
                requested_characters=0,
            )
            sentences = (
                text.stored_answer(run.finished_answer)
                if run.finished_answer is not None and not run.has_events
                else text.sentences()
            )
            source = self._synthesis(usage, sentences, synthesizer, opts.format)
        except BaseException:
            text.close()
            self.limiter.release(org_id)
            if http is not None:
                await http.aclose()
            raise
        stream = self._stream(
            source, choice, opts.format, FORMATS[opts.format].output_rate(synthesizer.sample_rate)
        )

        async def release_run() -> None:
            usage.requested_characters = text.characters_received
            text.close()
            if http is not None:
                await http.aclose()

        stream.on_close.append(release_run)  # runs first: accounting sees the final counts
        return stream
