"""Voice: text-to-speech streamed as audio, voices, usage, and speaking a run's answer live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from api.audio_stream import AudioStreamResponse
from api.deps import CurrentPrincipal, ServicesDep, StreamPrincipal, WritePrincipal
from deeployd.models.voice import TTSRequest, VoiceUsagePublic
from deeployd.orgs import Principal
from deeployd.revocation import KEY_RECHECK_SECONDS, KeyRevoked, revocable
from deeployd.services import Services
from deeployd.settings import Settings
from deeployd.voice import piper_engine
from deeployd.voice.encoders import DEFAULT_FORMAT, FORMATS, encoders_available
from deeployd.voice.engine import PRESETS, get_engine
from deeployd.voice.piper_engine import PIPER_PRESETS
from deeployd.voice.providers import ENGINES, ProviderError, openai_voices, speech_api_key
from deeployd.voice.service import (
    DEFAULT_LANGUAGE,
    OrgLimiter,
    SpeechOptions,
    TooManyStreams,
    VoiceService,
    VoiceStream,
)
from deeployd.voice.store import usage_totals

router = APIRouter(tags=["voice"])

RETRY_AFTER_S = 1


def warm_up(settings: Settings) -> None:
    """Load the default engine's model in the background at start-up (never blocks it), so the
    first request's first byte does not wait for it."""
    if settings.voice_default_engine == "piper":
        piper_engine.warm_up(settings.voice_piper_workers)


def _voice_service(request: Request, services: Services) -> VoiceService:
    limiter: OrgLimiter | None = getattr(request.app.state, "voice_limiter", None)
    if limiter is None:
        limiter = OrgLimiter(services.settings.voice_max_concurrent_per_org)
        request.app.state.voice_limiter = limiter
    return VoiceService(services.settings, services.db, services.bus, limiter)


def _headers(stream: VoiceStream) -> dict[str, str]:
    headers = {
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # proxies must not buffer a live audio stream
        "X-Voice-Provider": stream.provider,
        "X-Channels": "1",
    }
    if stream.engine is not None:
        headers["X-Voice-Engine"] = stream.engine
    if stream.sample_rate is not None:
        headers["X-Sample-Rate"] = str(stream.sample_rate)
    return headers


async def _until_revoked(
    stream: VoiceStream, request: Request, principal: Principal
) -> AsyncIterator[bytes]:
    """The stream's chunks, ending within KEY_RECHECK_SECONDS of its key being revoked."""
    # The same key re-check as every SSE stream (one query per key per second, however many
    # streams it holds open).
    streamer = getattr(request.app.state, "streamer", None)
    key_check = getattr(streamer, "key_check", None)
    if key_check is None:
        async for chunk in stream.chunks():
            yield chunk
        return
    try:
        async for chunk in revocable(
            stream.chunks(), principal.key_id, key_check, KEY_RECHECK_SECONDS
        ):
            yield chunk
    except KeyRevoked:
        stream.cancel()


def _respond(stream: VoiceStream, request: Request, principal: Principal) -> AudioStreamResponse:
    return AudioStreamResponse(
        stream, headers=_headers(stream), chunks=_until_revoked(stream, request, principal)
    )


def _too_many(exc: TooManyStreams) -> HTTPException:
    return HTTPException(429, exc.message, headers={"Retry-After": str(RETRY_AFTER_S)})


@router.post(
    "/api/voice/tts/stream",
    summary="Stream text-to-speech audio, sentence by sentence",
    response_class=AudioStreamResponse,
    status_code=200,
    responses={200: {"content": {f.content_type(22050): {} for f in FORMATS.values()}}},
)
async def tts_stream(
    body: TTSRequest, request: Request, principal: WritePrincipal, services: ServicesDep
) -> AudioStreamResponse:
    try:
        stream = await _voice_service(request, services).open_tts(principal.org_id, body)
    except TooManyStreams as exc:
        raise _too_many(exc) from exc
    except ProviderError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    return _respond(stream, request, principal)


@router.get("/api/voice/voices", summary="The voices of each provider")
async def list_voices(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    settings = services.settings
    espeak = get_engine()
    default_engine = settings.voice_default_engine
    formats = [name for name, ok in encoders_available().items() if ok]
    piper_voices = {
        p.id: {
            "description": p.description,
            "pitch": p.pitch,
            "lengthScale": p.length_scale,
            "noiseScale": p.noise_scale,
            "noiseW": p.noise_w,
        }
        for p in PIPER_PRESETS.values()
    }
    espeak_voices = {
        p.id: {
            "description": p.description,
            "gender": p.gender,
            "engineVoice": f"+{p.variant}",
            "pitch": p.pitch,
            "pitchRange": p.pitch_range,
        }
        for p in PRESETS.values()
    }
    by_engine = {"piper": piper_voices, "espeak": espeak_voices}
    return {
        "defaultProvider": settings.voice_default_provider,
        "providers": [
            {
                "name": "embedded",
                "engine": "Piper (en_US-joe-medium) and eSpeak NG",
                "defaultEngine": default_engine,
                "available": True,
                "sampleRate": (
                    piper_engine.sample_rate() if default_engine == "piper" else espeak.sample_rate
                ),
                "formats": formats,
                "defaultLanguage": DEFAULT_LANGUAGE,
                "languages": sorted(espeak.languages | piper_engine.LANGUAGES),
                "engines": [
                    {
                        "name": "piper",
                        "description": "neural (VITS on onnxruntime), one US English speaker",
                        "model": piper_engine.VOICE_NAME,
                        "sampleRate": piper_engine.sample_rate(),
                        "languages": sorted(piper_engine.LANGUAGES),
                        "loaded": piper_engine.loaded_engine() is not None,
                    },
                    {
                        "name": "espeak",
                        "description": "formant synthesis, 100+ languages, the fastest",
                        "model": "eSpeak NG",
                        "sampleRate": espeak.sample_rate,
                        "languages": sorted(espeak.languages),
                        "loaded": True,
                    },
                ],
                # Each familiar name on each engine; `description` is the default engine's.
                "voices": [
                    {
                        "id": voice_id,
                        "description": by_engine[default_engine][voice_id]["description"],
                        **{name: by_engine[name][voice_id] for name in ENGINES},
                    }
                    for voice_id in PRESETS
                ],
            },
            {
                "name": "openai",
                "engine": "OpenAI-compatible /v1/audio/speech",
                "available": bool(speech_api_key(settings))
                or settings.openai_tts_base_url.rstrip("/") != "https://api.openai.com/v1",
                "baseUrl": settings.openai_tts_base_url,
                "model": settings.openai_tts_model,
                "formats": list(FORMATS),
                "voices": [{"id": v} for v in openai_voices(settings)],
            },
        ],
    }


@router.get(
    "/api/voice/usage",
    response_model=VoiceUsagePublic,
    response_model_by_alias=True,
    summary="Characters synthesised by this organisation",
)
async def voice_usage(
    principal: CurrentPrincipal,
    services: ServicesDep,
    since: Annotated[datetime | None, Query(description="ISO time; default all time")] = None,
) -> VoiceUsagePublic:
    return await usage_totals(services.db, principal.org_id, since)


@router.get(
    "/api/runs/{run_id}/speech",
    summary="Audio of a run's answer, spoken sentence by sentence while it is written",
    response_class=AudioStreamResponse,
    status_code=200,
)
async def run_speech(
    run_id: str,
    request: Request,
    principal: StreamPrincipal,
    services: ServicesDep,
    voice: Annotated[str, Query()] = "alloy",
    format: Annotated[str, Query()] = DEFAULT_FORMAT,
    speed: Annotated[float, Query(ge=0.25, le=4.0)] = 1.0,
    provider: Annotated[str | None, Query()] = None,
    language: Annotated[str | None, Query()] = None,
    engine: Annotated[str | None, Query()] = None,
) -> AudioStreamResponse:
    try:
        opts = SpeechOptions(voice, format, speed, provider, engine, language)
        stream = await _voice_service(request, services).open_run_speech(
            principal.org_id, run_id, opts
        )
    except TooManyStreams as exc:
        raise _too_many(exc) from exc
    return _respond(stream, request, principal)
