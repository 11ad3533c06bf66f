"""Voice: text-to-speech streamed as audio, voices, usage, and speaking a run's answer live."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import func
from sqlmodel import select

from api.deps import CurrentPrincipal, ServicesDep, SessionDep, StreamPrincipal, WritePrincipal
from deeployd.models.voice import TTSRequest, VoiceUsage, VoiceUsagePublic, VoiceUsageTotals
from deeployd.services import Services
from deeployd.settings import Settings
from deeployd.voice import piper_engine
from deeployd.voice.encoders import DEFAULT_FORMAT, FORMATS, StreamEncoder, encoders_available
from deeployd.voice.engine import PRESETS, get_engine
from deeployd.voice.piper_engine import PIPER_PRESETS
from deeployd.voice.providers import (
    ENGINES,
    PROVIDERS,
    EngineChoiceError,
    OpenAIPcmSynthesizer,
    OpenAISpeech,
    ProviderError,
    SentenceSynthesizer,
    embedded_synthesizer,
    openai_voices,
    resolve_engine,
    speech_api_key,
    stream_through,
)
from deeployd.voice.runs import RunText, find_run
from deeployd.voice.service import (
    AudioSource,
    AudioStreamResponse,
    OrgLimiter,
    PassThroughStream,
    SynthesisStream,
    UsageRecord,
    record_usage,
)
from deeployd.voice.text import clean, split_sentences

router = APIRouter(tags=["voice"])

DEFAULT_LANGUAGE = "en-us"
RETRY_AFTER_S = 1


def warm_up(settings: Settings) -> None:
    """Load the default engine's model in the background at start-up (never blocks it), so the
    first request's first byte does not wait for it."""
    if settings.voice_default_engine == "piper":
        piper_engine.warm_up(settings.voice_piper_workers)


def _limiter(request: Request, settings: Settings) -> OrgLimiter:
    limiter: OrgLimiter | None = getattr(request.app.state, "voice_limiter", None)
    if limiter is None:
        limiter = OrgLimiter(settings.voice_max_concurrent_per_org)
        request.app.state.voice_limiter = limiter
    return limiter


def _invalid(root: str, errors: list[tuple[str, str]]) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": (root, field), "msg": msg, "type": "value_error"} for field, msg in errors]
    )


def _check_choice(
    settings: Settings,
    *,
    voice: str,
    fmt: str,
    provider: str | None,
    engine: str | None,
    language: str | None,
    errors: list[tuple[str, str]],
) -> tuple[str, str | None]:
    """Validate voice/format/provider/engine/language; returns the provider to use and, for
    the embedded provider, its engine."""
    chosen = provider or settings.voice_default_provider
    if chosen not in PROVIDERS:
        errors.append(("provider", f"unknown provider {chosen!r}; one of {', '.join(PROVIDERS)}"))
        return chosen, None
    allowed = list(PRESETS) if chosen == "embedded" else openai_voices(settings)
    if voice not in allowed:
        errors.append(
            ("voice", f"unknown voice {voice!r} for {chosen}; one of {', '.join(allowed)}")
        )
    if fmt not in FORMATS:
        errors.append(("format", f"unknown format {fmt!r}; one of {', '.join(FORMATS)}"))
    if chosen != "embedded":
        for name, value in (("engine", engine), ("language", language)):
            if value is not None:
                errors.append((name, f"{name} is only used by the embedded provider"))
        return chosen, None
    try:
        return chosen, resolve_engine(
            engine, language or DEFAULT_LANGUAGE, settings.voice_default_engine
        )
    except EngineChoiceError as exc:
        errors.append((exc.field, str(exc)))
        return chosen, None


def _headers(rate: int | None, provider: str, engine: str | None = None) -> dict[str, str]:
    headers = {
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # proxies must not buffer a live audio stream
        "X-Voice-Provider": provider,
        "X-Channels": "1",
    }
    if engine is not None:
        headers["X-Voice-Engine"] = engine
    if rate is not None:
        headers["X-Sample-Rate"] = str(rate)
    return headers


def _media_type(fmt: str, rate: int | None) -> str:
    return FORMATS[fmt].content_type(rate or 24000)


async def _respond(
    request: Request,
    services: Services,
    source: AudioSource,
    *,
    fmt: str,
    rate: int | None,
    provider: str,
    engine: str | None = None,
) -> AudioStreamResponse:
    limiter = _limiter(request, services.settings)
    org_id = source.usage.org_id

    async def on_close(done: AudioSource) -> None:
        limiter.release(org_id)
        await record_usage(services.db, done.usage)

    return AudioStreamResponse(
        source,
        media_type=_media_type(fmt, rate),
        headers=_headers(rate, provider, engine),
        on_close=on_close,
    )


def _acquire(request: Request, settings: Settings, org_id: str) -> OrgLimiter:
    limiter = _limiter(request, settings)
    if not limiter.try_acquire(org_id):
        raise HTTPException(
            429,
            f"at most {limiter.limit} concurrent voice streams per organisation",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return limiter


def _synthesis_stream(
    settings: Settings,
    usage: UsageRecord,
    sentences: Any,
    synthesizer: SentenceSynthesizer,
    fmt: str,
) -> SynthesisStream:
    return SynthesisStream(
        usage=usage,
        sentences=sentences,
        synthesizer=synthesizer,
        encoder=StreamEncoder(FORMATS[fmt], synthesizer.sample_rate),
        queue_size=settings.voice_queue_chunks,
    )


async def _aiter(items: list[str]):  # type: ignore[no-untyped-def]
    for item in items:
        yield item


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
    settings = services.settings
    errors: list[tuple[str, str]] = []
    text = body.text
    if not text.strip():
        errors.append(("text", "text must not be empty"))
    elif not clean(text).strip():
        errors.append(("text", "text has nothing to speak (only control characters)"))
    elif len(text) > settings.voice_max_chars:
        errors.append(
            ("text", f"text is {len(text)} characters; the maximum is {settings.voice_max_chars}")
        )
    provider, engine = _check_choice(
        settings,
        voice=body.voice,
        fmt=body.format,
        provider=body.provider,
        engine=body.engine,
        language=body.language,
        errors=errors,
    )
    if errors:
        raise _invalid("body", errors)
    usage = UsageRecord(
        org_id=principal.org_id,
        source="tts",
        provider=provider,
        voice=body.voice,
        format=body.format,
        requested_characters=len(text),
    )
    limiter = _acquire(request, settings, principal.org_id)
    try:
        if provider == "embedded":
            assert engine is not None
            synthesizer = embedded_synthesizer(
                engine,
                body.voice,
                body.language or DEFAULT_LANGUAGE,
                body.speed,
                piper_workers=settings.voice_piper_workers,
            )
            source: AudioSource = _synthesis_stream(
                settings, usage, _aiter(split_sentences(text)), synthesizer, body.format
            )
            rate: int | None = FORMATS[body.format].output_rate(synthesizer.sample_rate)
        else:
            source, rate = await _openai_passthrough(settings, usage, body)
    except BaseException:
        limiter.release(principal.org_id)
        raise
    return await _respond(
        request, services, source, fmt=body.format, rate=rate, provider=provider, engine=engine
    )


async def _openai_passthrough(
    settings: Settings, usage: UsageRecord, body: TTSRequest
) -> tuple[AudioSource, int | None]:
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=120.0))
    try:
        response = await OpenAISpeech(settings).open_stream(
            http, text=body.text, voice=body.voice, response_format=body.format, speed=body.speed
        )
    except ProviderError as exc:
        await http.aclose()
        raise HTTPException(exc.status, str(exc)) from exc

    async def relay():  # type: ignore[no-untyped-def]
        try:
            async for chunk in stream_through(response):
                yield chunk
        finally:
            await http.aclose()

    rate = settings.openai_tts_pcm_rate if body.format == "pcm" else None
    return PassThroughStream(usage=usage, upstream=relay()), rate


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
    session: SessionDep,
    since: Annotated[datetime | None, Query(description="ISO time; default all time")] = None,
) -> VoiceUsagePublic:
    query = select(
        VoiceUsage.provider,
        func.count(),
        func.coalesce(func.sum(VoiceUsage.characters), 0),
        func.coalesce(func.sum(VoiceUsage.audio_ms), 0),
    ).where(VoiceUsage.org_id == principal.org_id)
    if since is not None:
        query = query.where(VoiceUsage.created_at >= since)
    rows = (await session.exec(query.group_by(VoiceUsage.provider))).all()  # type: ignore[call-overload]
    totals = [
        VoiceUsageTotals(
            provider=p, requests=int(n), characters=int(c), audio_seconds=round(int(ms) / 1000, 3)
        )
        for p, n, c, ms in sorted(rows)
    ]
    return VoiceUsagePublic(
        since=since,
        requests=sum(t.requests for t in totals),
        characters=sum(t.characters for t in totals),
        audio_seconds=round(sum(t.audio_seconds for t in totals), 3),
        by_provider=totals,
    )


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
    settings = services.settings
    errors: list[tuple[str, str]] = []
    chosen, chosen_engine = _check_choice(
        settings,
        voice=voice,
        fmt=format,
        provider=provider,
        engine=engine,
        language=language,
        errors=errors,
    )
    if errors:
        raise _invalid("query", errors)
    text = RunText(
        services.require_bus(),
        services.db.pool,
        principal.org_id,
        run_id,
        idle_seconds=settings.voice_run_idle_seconds,
        max_chars=settings.voice_run_max_chars,
    )
    try:
        run = await find_run(services.db.pool, principal.org_id, run_id)
        if not run.exists:
            raise HTTPException(404, "run not found")
        limiter = _acquire(request, settings, principal.org_id)
    except BaseException:
        text.close()
        raise
    try:
        synthesizer: SentenceSynthesizer
        http: httpx.AsyncClient | None = None
        if chosen == "embedded":
            assert chosen_engine is not None
            synthesizer = embedded_synthesizer(
                chosen_engine,
                voice,
                language or DEFAULT_LANGUAGE,
                speed,
                piper_workers=settings.voice_piper_workers,
            )
        else:
            http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=120.0))
            synthesizer = OpenAIPcmSynthesizer(OpenAISpeech(settings), http, voice, speed)
        usage = UsageRecord(
            org_id=principal.org_id,
            source="run",
            run_id=run_id,
            provider=chosen,
            voice=voice,
            format=format,
            requested_characters=0,
        )
        sentences = (
            text.stored_answer(run.finished_answer)
            if run.finished_answer is not None and not run.has_events
            else text.sentences()
        )
        source = _synthesis_stream(settings, usage, sentences, synthesizer, format)
    except BaseException:
        text.close()
        limiter.release(principal.org_id)
        raise
    rate = FORMATS[format].output_rate(synthesizer.sample_rate)
    response = await _respond(
        request, services, source, fmt=format, rate=rate, provider=chosen, engine=chosen_engine
    )
    original = response.on_close

    async def on_close(done: AudioSource) -> None:
        done.usage.requested_characters = text.characters_received
        text.close()
        if http is not None:
            await http.aclose()
        await original(done)

    response.on_close = on_close
    return response
