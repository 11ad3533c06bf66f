"""Speech providers: the embedded engines (Piper, neural; eSpeak NG, formant), and any
OpenAI-compatible `/v1/audio/speech` server (OpenAI itself, or a self-hosted Kokoro-FastAPI /
openedai-speech / Piper server)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import httpx

from deeployd.netguard import check_outbound_url
from deeployd.settings import Settings
from deeployd.voice import piper_engine
from deeployd.voice.engine import PRESETS, get_engine
from deeployd.voice.piper_engine import PIPER_PRESETS, get_piper_engine, loaded_engine

FAMILIAR_VOICES = tuple(PRESETS)
PROVIDERS = ("embedded", "openai")
ENGINES = ("piper", "espeak")  # of the embedded provider


class ProviderError(Exception):
    """The provider refused or failed; `status` is what the API answers (502 for upstream)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class SentenceSynthesizer(Protocol):
    """Turns one sentence into 16-bit mono PCM at `sample_rate`."""

    sample_rate: int

    async def synthesize(self, text: str, cancel: threading.Event) -> bytes: ...


@dataclass
class EspeakSynthesizer:
    voice: str
    language: str
    speed: float = 1.0

    def __post_init__(self) -> None:
        self.engine = get_engine()
        self.sample_rate = self.engine.sample_rate

    async def synthesize(self, text: str, cancel: threading.Event) -> bytes:
        return await self.engine.synthesize(
            text,
            language=self.language,
            preset=PRESETS[self.voice],
            speed=self.speed,
            cancel=cancel,
        )


@dataclass
class PiperSynthesizer:
    voice: str
    speed: float = 1.0
    workers: int = 2

    def __post_init__(self) -> None:
        self.sample_rate = piper_engine.sample_rate()  # from the voice config: no model load
        self.sentences = 0  # sentences of this stream so far: the engine's queue priority

    async def synthesize(self, text: str, cancel: threading.Event) -> bytes:
        # The first use of a process loads the model (~0.3 s): never on the event loop.
        engine = loaded_engine()
        if engine is None:
            engine = await asyncio.to_thread(get_piper_engine, self.workers)
        index, self.sentences = self.sentences, self.sentences + 1
        return await engine.synthesize(
            text, preset=PIPER_PRESETS[self.voice], speed=self.speed, cancel=cancel, index=index
        )


def embedded_synthesizer(
    engine: str, voice: str, language: str, speed: float, *, piper_workers: int = 2
) -> SentenceSynthesizer:
    if engine == "piper":
        return PiperSynthesizer(voice, speed, piper_workers)
    return EspeakSynthesizer(voice, language, speed)


def openai_voices(settings: Settings) -> list[str]:
    extra = [v.strip() for v in settings.openai_tts_extra_voices.split(",") if v.strip()]
    return list(dict.fromkeys([*FAMILIAR_VOICES, *extra]))


OPENAI_SPEECH_BASE_URL = "https://api.openai.com/v1"


def speech_api_key(settings: Settings) -> str | None:
    """The key for the speech endpoint: DEEPLOYD_OPENAI_TTS_API_KEY (meant for whatever base URL
    is configured), else the platform's OPENAI_API_KEY, but only for OpenAI's own endpoint."""
    if settings.openai_tts_api_key:
        return settings.openai_tts_api_key
    if settings.openai_tts_base_url.rstrip("/") == OPENAI_SPEECH_BASE_URL:
        return settings.openai_api_key or None
    return None


class OpenAISpeech:
    """Client of an OpenAI-compatible speech endpoint; the body streams back as it is produced."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.openai_tts_base_url.rstrip("/") + "/audio/speech"

    def _headers(self) -> dict[str, str]:
        key = speech_api_key(self.settings)
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def open_stream(
        self, http: httpx.AsyncClient, *, text: str, voice: str, response_format: str, speed: float
    ) -> httpx.Response:
        """POST and return the response with its body still unread (the caller streams it)."""
        try:
            await check_outbound_url(self.url, allow_private=self.settings.allow_private_urls)
        except ValueError as exc:
            raise ProviderError(f"openai provider URL refused: {exc}") from exc
        body = {
            "model": self.settings.openai_tts_model,
            "input": text,
            "voice": voice,
            "response_format": response_format,
            "speed": speed,
        }
        request = http.build_request("POST", self.url, json=body, headers=self._headers())
        try:
            response = await http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise ProviderError(f"openai provider unreachable: {exc}") from exc
        if response.status_code >= 400:
            detail = (await response.aread())[:300].decode("utf-8", "replace")
            await response.aclose()
            status = 429 if response.status_code == 429 else 502
            raise ProviderError(
                f"openai provider answered {response.status_code}: {detail}", status
            )
        return response


@dataclass
class OpenAIPcmSynthesizer:
    """Per-sentence synthesis through the provider's `pcm` output, so run speech can re-encode
    many provider responses into ONE continuous stream of the requested format."""

    speech: OpenAISpeech
    http: httpx.AsyncClient
    voice: str
    speed: float = 1.0

    def __post_init__(self) -> None:
        self.sample_rate = self.speech.settings.openai_tts_pcm_rate

    async def synthesize(self, text: str, cancel: threading.Event) -> bytes:
        response = await self.speech.open_stream(
            self.http, text=text, voice=self.voice, response_format="pcm", speed=self.speed
        )
        parts: list[bytes] = []
        try:
            async for chunk in response.aiter_bytes():
                if cancel.is_set():
                    break
                parts.append(chunk)
        finally:
            await response.aclose()
        return b"".join(parts)


async def stream_through(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            if chunk:
                yield chunk
    finally:
        await response.aclose()


class EngineChoiceError(ValueError):
    """The requested embedded engine cannot speak the request; `field` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def resolve_engine(requested: str | None, language: str, default: str) -> str:
    """The embedded engine for a request. Named engines are honoured or refused; without one,
    the default (Piper) speaks the languages it has a voice for and eSpeak all the others."""
    if requested is not None and requested not in ENGINES:
        raise EngineChoiceError(
            "engine", f"unknown engine {requested!r}; one of {', '.join(ENGINES)}"
        )
    engine = requested or default
    if engine == "piper" and not piper_engine.supports_language(language):
        if requested == "piper":
            raise EngineChoiceError(
                "engine",
                f"piper has no voice for language {language!r} (it speaks "
                f"{', '.join(sorted(piper_engine.LANGUAGES))}); use engine espeak",
            )
        engine = "espeak"
    if engine == "espeak" and not get_engine().supports_language(language):
        raise EngineChoiceError("language", f"eSpeak has no voice for language {language!r}")
    return engine
