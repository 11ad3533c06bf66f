"""The embedded speech engine: eSpeak NG loaded from the `espeakng-loader` wheel through ctypes.

libespeak-ng keeps global state (current voice, parameters, the synth callback) and is not
thread-safe, so every call runs on ONE dedicated thread owned by `EspeakEngine`. Synthesis of a
sentence takes a few milliseconds, so one thread serves many concurrent streams; each stream
submits one sentence at a time, which interleaves streams fairly.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import espeakng_loader

SAMPLE_RATE = 22050  # what libespeak-ng produces (checked against espeak_Initialize's answer)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
_BUFFER_MS = 100  # callback granularity: how quickly a cancel takes effect inside a sentence
DEFAULT_WPM = 175
MIN_WPM, MAX_WPM = 80, 450


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class VoicePreset:
    """How a familiar voice name is rendered by eSpeak: a variant file plus pitch settings."""

    id: str
    variant: str  # file in espeak-ng-data/voices/!v
    pitch: int  # 0-100, eSpeak's default is 50
    pitch_range: int  # 0-100: intonation; low = monotone
    gender: str
    description: str


# Distinct variants AND pitches, so each name sounds (and encodes) differently.
PRESETS: dict[str, VoicePreset] = {
    p.id: p
    for p in (
        VoicePreset("alloy", "f2", 52, 50, "female", "neutral, mid pitch"),
        VoicePreset("echo", "m3", 45, 40, "male", "calm male"),
        VoicePreset("fable", "m7", 60, 75, "male", "expressive, wide intonation"),
        VoicePreset("onyx", "m1", 25, 35, "male", "deep male"),
        VoicePreset("nova", "f3", 65, 60, "female", "bright female"),
        VoicePreset("shimmer", "f4", 92, 70, "female", "high, lively female"),
    )
}


class SynthesisCancelled(Exception):
    """Raised when a sentence's synthesis was stopped by its cancel flag."""


class EspeakEngine:
    """Process-wide eSpeak NG instance; use `get_engine()`."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._declare()
        # The callback object must outlive every synthesis: keep a reference on the instance.
        self._callback = _SynthCallback(self._on_audio)
        self._chunks: list[bytes] = []
        self._cancel: threading.Event | None = None
        self._current_voice: bytes | None = None
        self.sentences_synthesised = 0  # an internal counter tests and metrics can read
        self.sample_rate, self._voice_ids = self._executor.submit(self._initialise).result()
        self.languages = frozenset(self._voice_ids)

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int

    # --- on the engine thread -------------------------------------------------------------

    def _initialise(self) -> tuple[int, dict[str, str]]:
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, espeakng_loader.get_data_path().encode(), 0
        )
        if rate <= 0:
            raise RuntimeError("espeak_Initialize failed (is the espeak-ng-data directory intact?)")
        self._lib.espeak_SetSynthCallback(self._callback)
        return rate, self._list_languages()

    def _list_languages(self) -> dict[str, str]:
        """language tag -> identifier of the installed voice that declares it with the best
        priority (a voice's `languages` field is priority byte + string pairs, 0-terminated)."""
        voices = self._lib.espeak_ListVoices(None)
        best: dict[str, tuple[int, str]] = {}
        i = 0
        while voices[i]:
            voice = voices[i].contents
            identifier = (voice.identifier or b"").decode("utf-8", "replace")
            raw = ctypes.cast(voice.languages, ctypes.POINTER(ctypes.c_ubyte))
            j = 0
            while raw[j] != 0:
                priority = raw[j]
                j += 1
                start = j
                while raw[j] != 0:
                    j += 1
                language = bytes(raw[start:j]).decode("utf-8", "replace").lower()
                j += 1
                if identifier and (language not in best or priority < best[language][0]):
                    best[language] = (priority, identifier)
            i += 1
        return {language: identifier for language, (_, identifier) in best.items()}

    def _on_audio(self, wav, numsamples, _events) -> int:  # type: ignore[no-untyped-def]
        if self._cancel is not None and self._cancel.is_set():
            return 1  # non-zero tells eSpeak to abort this synthesis now
        if numsamples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0

    def _synth(
        self, text: str, language: str, preset: VoicePreset, wpm: int, cancel: threading.Event
    ) -> bytes:
        if cancel.is_set():
            raise SynthesisCancelled()
        identifier = self._voice_ids.get(language.lower())
        if identifier is None:
            raise ValueError(f"eSpeak has no voice for language {language!r}")
        # By file identifier (e.g. "gmw/en-US"): language tags alone do not always resolve.
        voice = f"{identifier}+{preset.variant}".encode()
        if voice != self._current_voice:
            if self._lib.espeak_SetVoiceByName(voice) != 0:
                raise ValueError(f"eSpeak has no voice for language {language!r}")
            self._current_voice = voice
        self._lib.espeak_SetParameter(_ESPEAK_RATE, wpm, 0)
        self._lib.espeak_SetParameter(_ESPEAK_PITCH, preset.pitch, 0)
        self._lib.espeak_SetParameter(_ESPEAK_RANGE, preset.pitch_range, 0)
        data = text.encode("utf-8")
        self._chunks = []
        self._cancel = cancel
        try:
            self._lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
        finally:
            self._cancel = None
        if cancel.is_set():
            raise SynthesisCancelled()
        self.sentences_synthesised += 1
        pcm = b"".join(self._chunks)
        self._chunks = []
        return pcm

    # --- from anywhere ----------------------------------------------------------------------

    def supports_language(self, language: str) -> bool:
        return language.lower() in self.languages

    async def synthesize(
        self,
        text: str,
        *,
        language: str,
        preset: VoicePreset,
        speed: float = 1.0,
        cancel: threading.Event,
    ) -> bytes:
        """16-bit little-endian mono PCM at `sample_rate` for one sentence (off the event loop)."""
        wpm = max(MIN_WPM, min(MAX_WPM, round(DEFAULT_WPM * speed)))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._synth, text, language, preset, wpm, cancel
        )


@lru_cache(maxsize=1)
def get_engine() -> EspeakEngine:
    """The process's one engine, loaded on first use (a few ms)."""
    return EspeakEngine()
