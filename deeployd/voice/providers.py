"""Speech providers: the embedded eSpeak engine, and any OpenAI-compatible `/v1/audio/speech`
server (OpenAI itself, or a self-hosted Kokoro-FastAPI / openedai-speech / Piper server)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import httpx

from deeployd.netguard import check_outbound_url
from deeployd.settings import Settings
from deeployd.voice.engine import PRESETS, get_engine

FAMILIAR_VOICES = tuple(PRESETS)
PROVIDERS = ("embedded", "openai")


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
class EmbeddedSynthesizer:
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
