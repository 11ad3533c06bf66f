"""The `openai` voice provider against a local server speaking OpenAI's /v1/audio/speech format."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from deeployd.services import Services
from deeployd.settings import Settings
from deeployd.voice.probe import decode
from tests.conftest import Org, RunningApi
from tests.fakes import serve
from tests.fakes.openai_speech_server import RATE, SECONDS_PER_WORD, FakeSpeech


@pytest.fixture
async def speech() -> AsyncIterator[tuple[FakeSpeech, str]]:
    fake = FakeSpeech()
    async with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def settings(base_settings: Settings, speech: tuple[FakeSpeech, str]) -> Settings:
    """This module's API talks to the fake speech server (the `api` fixture uses `settings`)."""
    fake, url = speech
    return base_settings.model_copy(
        update={
            "task_queue": f"test-{uuid.uuid4().hex[:12]}",
            "openai_tts_base_url": f"{url}/v1",
            "openai_tts_api_key": fake.api_key,
            "openai_tts_model": "kokoro",
        }
    )


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[Services]:
    """Services with an event publisher, standing in for the agent-runs engine: these tests
    publish a run's `token`/`done` events themselves (the shapes agent runs publish)."""
    services = await Services.open(settings, with_temporal=False)
    try:
        yield services
    finally:
        await services.close()


def auth(org: Org) -> dict[str, str]:
    return {"Authorization": f"Bearer {org.admin_key}"}


async def test_openai_audio_is_relayed_while_the_provider_is_still_producing_it(
    api: RunningApi, org: Org, speech: tuple[FakeSpeech, str]
) -> None:
    fake, _ = speech
    fake.hold = True  # the fake sends one chunk, then waits for `release`
    text = "Relayed from a self-hosted speech server, chunk by chunk."
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        http.stream(
            "POST",
            "/api/voice/tts/stream",
            json={
                "text": text,
                "voice": "nova",
                "format": "mp3",
                "provider": "openai",
                "speed": 1.25,
            },
            headers=auth(org),
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/mpeg"
        assert response.headers["x-voice-provider"] == "openai"
        iterator = response.aiter_raw()
        first = await asyncio.wait_for(anext(iterator), timeout=10)  # before the rest exists
        fake.release.set()
        rest = b"".join([chunk async for chunk in iterator])
    assert first + rest == fake.sent[0]
    assert fake.requests == [
        {"model": "kokoro", "input": text, "voice": "nova", "response_format": "mp3", "speed": 1.25}
    ]
    decoded = decode(first + rest, "mp3")
    assert decoded.seconds == pytest.approx(len(text.split()) * SECONDS_PER_WORD, abs=0.2)

    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for _ in range(100):
            usage = (await http.get("/api/voice/usage", headers=auth(org))).json()
            if usage["requests"]:
                break
            await asyncio.sleep(0.05)
    assert usage["byProvider"] == [
        {"provider": "openai", "requests": 1, "characters": len(text), "audioSeconds": 0.0}
    ]


async def test_openai_pcm_carries_the_provider_rate(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.post(
            "/api/voice/tts/stream",
            json={
                "text": "Four words of pcm.",
                "voice": "sage",
                "format": "pcm",
                "provider": "openai",
            },
            headers=auth(org),
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == f"audio/L16;rate={RATE};channels=1"
    assert response.headers["x-sample-rate"] == str(RATE)
    decoded = decode(response.content, "pcm", pcm_rate=RATE)
    assert decoded.seconds == pytest.approx(4 * SECONDS_PER_WORD, abs=0.01)


async def test_provider_refusal_is_a_502_and_unknown_openai_voice_a_422(
    api: RunningApi, org: Org, speech: tuple[FakeSpeech, str]
) -> None:
    fake, _ = speech
    fake.api_key = "sk-rotated"  # our configured key is now wrong
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        refused = await http.post(
            "/api/voice/tts/stream",
            json={"text": "Hello.", "voice": "alloy", "provider": "openai"},
            headers=auth(org),
        )
        bad_voice = await http.post(
            "/api/voice/tts/stream",
            json={"text": "Hello.", "voice": "af_nope", "provider": "openai"},
            headers=auth(org),
        )
        # The refused request released its concurrency slot.
        assert api.app.state.voice_limiter.active(org.id) == 0
    assert refused.status_code == 502
    assert "401" in refused.json()["detail"]
    assert bad_voice.status_code == 422
    assert bad_voice.json()["errors"][0].startswith("voice: unknown voice 'af_nope' for openai")


async def test_run_speech_through_the_openai_provider_reencodes_sentences_into_one_stream(
    api: RunningApi, org: Org, events: Services, speech: tuple[FakeSpeech, str]
) -> None:
    fake, _ = speech
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    stream = f"run:{run_id}"
    answer = "The first sentence has six words. The second one has five."
    for token in answer.split(" "):
        await events.publisher.publish(org.id, stream, "token", {"token": token + " "})
    await events.publisher.publish(org.id, stream, "done", {"usage": {"total": 11}, "cost": 0})
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.get(
            f"/api/runs/{run_id}/speech",
            params={"voice": "echo", "format": "opus", "provider": "openai"},
            headers=auth(org),
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/ogg; codecs=opus"
    assert [r["response_format"] for r in fake.requests] == ["pcm", "pcm"]
    assert [r["input"].strip() for r in fake.requests] == [
        "The first sentence has six words.",
        "The second one has five.",
    ]
    decoded = decode(response.content, "opus")
    assert decoded.sample_rate == 48000
    assert decoded.seconds == pytest.approx(11 * SECONDS_PER_WORD, abs=0.15)


async def test_run_speech_starts_a_new_sentence_at_each_model_turn(
    api: RunningApi, org: Org, events: Services, speech: tuple[FakeSpeech, str]
) -> None:
    fake, _ = speech
    run_id = f"run_{uuid.uuid4().hex[:12]}"
    stream = f"run:{run_id}"
    published = [
        ("token", {"token": "Let me", "turn": 0}),
        ("token", {"token": " check the weather", "turn": 0}),
        ("tool_call", {"name": "http_request", "arguments": {}}),
        ("tool_result", {"name": "http_request", "result": {"sky": "clear"}}),
        ("token", {"token": "It is", "turn": 1}),
        ("token", {"token": " sunny", "turn": 1}),
        ("done", {"usage": {"total": 7}, "cost": 0}),
    ]
    for event_type, data in published:
        await events.publisher.publish(org.id, stream, event_type, data)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.get(
            f"/api/runs/{run_id}/speech",
            params={"format": "pcm", "provider": "openai", "voice": "alloy"},
            headers=auth(org),
        )
    assert response.status_code == 200
    # No sentence punctuation anywhere, yet the text before the tool call was spoken on its own.
    assert [r["input"] for r in fake.requests] == ["Let me check the weather", "It is sunny"]
    assert len(response.content) == 2 * int(RATE * SECONDS_PER_WORD) * 8  # 8 words of tone
