"""Text-to-speech streamed as audio on the embedded eSpeak engine (`"engine": "espeak"`), over
the real HTTP API. The default engine, Piper, is tested in test_voice_piper.py."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
import pytest

from deeployd.voice.engine import get_engine
from deeployd.voice.probe import decode, median_f0
from deeployd.voice.text import split_sentences
from tests.conftest import Org, RunningApi

SPEECH = (
    "Streaming speech starts playing before the whole text is ready. "
    "Each sentence is synthesised as soon as the one before it has been encoded. "
    "Players can begin at the first frame boundary."
)
WORDS = len(SPEECH.split())

CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
}
CODECS = {"mp3": "mp3", "opus": "opus", "aac": "aac", "flac": "flac", "wav": "pcm_s16le"}


def auth(org: Org) -> dict[str, str]:
    return {"Authorization": f"Bearer {org.admin_key}"}


async def tts(http: httpx.AsyncClient, org: Org, **body: object) -> httpx.Response:
    return await http.post("/api/voice/tts/stream", json=body, headers=auth(org))


def assert_plausible_speech(seconds: float, words: int) -> None:
    # Human-ish speech is 1.5-5 words/s; eSpeak at 175 wpm is ~2.9. Leave room for pauses.
    assert 1.0 <= words / seconds <= 6.0, f"{words} words in {seconds:.2f}s"


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
async def test_every_format_decodes_to_speech_of_a_plausible_length_at_the_advertised_rate(
    api: RunningApi, org: Org, fmt: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await tts(http, org, text=SPEECH, voice="nova", format=fmt, engine="espeak")
    assert response.status_code == 200, response.text
    rate = int(response.headers["x-sample-rate"])
    assert response.headers["x-channels"] == "1"
    if fmt == "pcm":
        assert response.headers["content-type"] == f"audio/L16;rate={rate};channels=1"
    else:
        assert response.headers["content-type"] == CONTENT_TYPES[fmt]
    decoded = decode(response.content, fmt, pcm_rate=rate)
    assert decoded.sample_rate == rate
    assert decoded.channels == 1
    if fmt != "pcm":
        assert decoded.codec.startswith(CODECS[fmt])  # decoder names: mp3float...
    assert_plausible_speech(decoded.seconds, WORDS)
    assert rate == (48000 if fmt == "opus" else 22050)


async def test_mp3_is_the_default_format_and_each_chunk_ends_on_a_frame_boundary(
    api: RunningApi, org: Org
) -> None:
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=30) as http,
        http.stream(
            "POST",
            "/api/voice/tts/stream",
            json={"text": SPEECH, "voice": "echo", "engine": "espeak"},
            headers=auth(org),
        ) as response,
    ):
        assert response.headers["content-type"] == "audio/mpeg"
        chunks = [chunk async for chunk in response.aiter_raw()]
    # Every network chunk the server wrote is whole MP3 frames: each one decodes on its own.
    whole = decode(b"".join(chunks), "mp3")
    parts = [decode(chunk, "mp3").seconds for chunk in chunks if len(chunk) > 1000]
    assert len(parts) >= 2
    assert sum(parts) == pytest.approx(whole.seconds, rel=0.05)


async def test_first_audio_leaves_before_the_whole_text_is_synthesised(
    api: RunningApi, org: Org
) -> None:
    sentence = "This is sentence number {} of a long answer, spoken one sentence at a time. "
    text = "".join(sentence.format(i) for i in range(60))
    total_sentences = len(split_sentences(text))
    engine = get_engine()
    # Read the counter before the request: synthesis starts before the response headers arrive.
    started = engine.sentences_synthesised
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        http.stream(
            "POST",
            "/api/voice/tts/stream",
            json={"text": text, "voice": "alloy", "format": "mp3", "engine": "espeak"},
            headers=auth(org),
        ) as response,
    ):
        assert response.status_code == 200
        t0 = time.perf_counter()
        iterator = response.aiter_raw()
        first = await anext(iterator)
        synthesised_at_first_chunk = engine.sentences_synthesised - started
        t_first = time.perf_counter() - t0
        rest = [chunk async for chunk in iterator]
        t_total = time.perf_counter() - t0
        synthesised_in_all = engine.sentences_synthesised - started
    assert first
    assert synthesised_in_all == total_sentences
    # The first chunk was out while most of the text was still waiting to be synthesised.
    assert synthesised_at_first_chunk < total_sentences / 2
    assert t_first < t_total
    decoded = decode(first + b"".join(rest), "mp3")
    assert_plausible_speech(decoded.seconds, len(text.split()))


async def test_each_familiar_voice_is_a_distinct_voice(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        voices = (await http.get("/api/voice/voices", headers=auth(org))).json()
        embedded = next(p for p in voices["providers"] if p["name"] == "embedded")
        ids = [v["id"] for v in embedded["voices"]]
        assert ids == ["alloy", "echo", "fable", "onyx", "nova", "shimmer"]
        assert [v["espeak"]["engineVoice"] for v in embedded["voices"]] == [
            "+f2",
            "+m3",
            "+m7",
            "+m1",
            "+f3",
            "+f4",
        ]
        openai = next(p for p in voices["providers"] if p["name"] == "openai")
        assert set(ids) <= {v["id"] for v in openai["voices"]}
        pitch = {}
        for voice in ids:
            response = await tts(
                http,
                org,
                text="Hello from Deeployd, the streaming platform.",
                voice=voice,
                format="pcm",
                engine="espeak",
            )
            assert response.status_code == 200
            pitch[voice] = median_f0(response.content, int(response.headers["x-sample-rate"]))
    # Measured fundamental frequencies: deep onyx < echo < fable < alloy < nova < shimmer,
    # each at least 8% apart (eSpeak's own jitter is a few %).
    ordered = sorted(ids, key=pitch.__getitem__)
    assert ordered == ["onyx", "echo", "fable", "alloy", "nova", "shimmer"], pitch
    for low, high in itertools.pairwise(ordered):
        assert pitch[high] > pitch[low] * 1.08, pitch


async def test_language_option_switches_the_espeak_voice(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        voices = (await http.get("/api/voice/voices", headers=auth(org))).json()
        languages = next(p for p in voices["providers"] if p["name"] == "embedded")["languages"]
        assert {"en", "en-us", "de", "fr", "es", "it", "pt"} <= set(languages)
        text = "Bonjour, comment allez-vous aujourd'hui?"
        french = await tts(http, org, text=text, voice="alloy", format="pcm", language="fr")
        english = await tts(
            http, org, text=text, voice="alloy", format="pcm", language="en-us", engine="espeak"
        )
        english_again = await tts(
            http, org, text=text, voice="alloy", format="pcm", language="en-us", engine="espeak"
        )
    assert french.status_code == english.status_code == 200
    # French is not a Piper language: without an engine named, eSpeak speaks it.
    assert french.headers["x-voice-engine"] == "espeak"
    # eSpeak's samples carry a little jitter, but its timing is nearly exact: the same language
    # gives the same length (a few samples apart), French pronunciation a clearly different one.
    assert len(english_again.content) == pytest.approx(len(english.content), rel=0.01)
    assert abs(len(french.content) - len(english.content)) > 0.1 * len(english.content)


async def test_bad_requests_are_422_naming_the_field(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        cases = {
            "text": {"text": "   ", "voice": "alloy"},
            "voice": {"text": "Hi.", "voice": "gandalf"},
            "format": {"text": "Hi.", "voice": "alloy", "format": "ogg-vorbis"},
            "language": {"text": "Hi.", "voice": "alloy", "language": "klingon"},
            "provider": {"text": "Hi.", "voice": "alloy", "provider": "polly"},
            "engine": {"text": "Hi.", "voice": "alloy", "engine": "festival"},
            "speed": {"text": "Hi.", "voice": "alloy", "speed": 9},
        }
        for field, body in cases.items():
            response = await http.post("/api/voice/tts/stream", json=body, headers=auth(org))
            assert response.status_code == 422, (field, response.text)
            assert any(e.startswith(f"{field}:") for e in response.json()["errors"]), (
                response.json()
            )
        too_long = await tts(http, org, text="a" * 5001, voice="alloy")
        assert too_long.status_code == 422
        assert too_long.json()["errors"] == ["text: text is 5001 characters; the maximum is 5000"]
        unauthenticated = await http.post("/api/voice/tts/stream", json={"text": "Hi."})
        assert unauthenticated.status_code == 401


async def test_a_disconnect_stops_synthesis_and_only_what_was_synthesised_is_metered(
    api: RunningApi, org: Org
) -> None:
    text = ("A long story that nobody will hear to the end. " * 104)[:5000]
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        async with http.stream(
            "POST",
            "/api/voice/tts/stream",
            json={"text": text, "voice": "onyx", "format": "wav"},
            headers=auth(org),
        ) as response:
            assert response.status_code == 200
            await anext(response.aiter_raw())
        # The client hung up after the first chunk; the usage row is written when the server
        # notices, so wait for it to appear.
        usage = await wait_for_usage(http, org, requests=1)
        complete = await tts(http, org, text="Short and complete.", voice="onyx", format="mp3")
        assert complete.status_code == 200
        after = await wait_for_usage(http, org, requests=2)
    assert 0 < usage["characters"] < len(text)
    assert after["characters"] == usage["characters"] + len("Short and complete.")
    assert after["byProvider"][0]["provider"] == "embedded"
    assert after["audioSeconds"] > 0


async def wait_for_usage(http: httpx.AsyncClient, org: Org, *, requests: int) -> dict:
    for _ in range(200):
        usage = (await http.get("/api/voice/usage", headers=auth(org))).json()
        if usage["requests"] >= requests:
            return usage
        await asyncio.sleep(0.05)
    raise AssertionError(f"usage never reached {requests} requests: {usage}")


async def test_a_client_that_stops_reading_pauses_synthesis(api: RunningApi, org: Org) -> None:
    # ~14 MB of WAV: far more than the socket buffers, so the bounded queue must fill up.
    text = ("Backpressure keeps memory bounded while a listener falls behind. " * 80)[:5000]
    total = len(split_sentences(text))
    engine = get_engine()
    before = engine.sentences_synthesised
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        http.stream(
            "POST",
            "/api/voice/tts/stream",
            json={"text": text, "voice": "echo", "format": "wav", "engine": "espeak"},
            headers=auth(org),
        ) as response,
    ):
        iterator = response.aiter_raw()
        await anext(iterator)
        # Stop reading; wait until synthesis stops advancing.
        seen = -1
        while engine.sentences_synthesised != seen:
            seen = engine.sentences_synthesised
            await asyncio.sleep(0.3)
        paused_at = seen - before
        # Reading again resumes synthesis through to the end.
        size = sum([len(chunk) async for chunk in iterator])
    assert paused_at < total
    assert engine.sentences_synthesised - before == total
    assert size > 10_000_000
