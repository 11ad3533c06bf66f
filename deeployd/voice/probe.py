"""Decoding audio the way a player would (PyAV): used by the tests, the benchmark and the CLI."""

from __future__ import annotations

import array
import io
import statistics
from dataclasses import dataclass

import av
from av.container import InputContainer


@dataclass
class Decoded:
    codec: str
    sample_rate: int
    channels: int
    seconds: float


def decode(data: bytes, fmt: str, *, pcm_rate: int | None = None) -> Decoded:
    """Decode a whole stream with FFmpeg (PyAV); raw PCM needs its rate from the headers."""
    container: InputContainer
    if fmt == "pcm":
        assert pcm_rate is not None
        container = av.open(
            io.BytesIO(data),
            "r",
            format="s16le",
            options={"sample_rate": str(pcm_rate), "ch_layout": "mono"},
        )
    else:
        container = av.open(io.BytesIO(data), "r")
    with container:
        stream = container.streams.audio[0]
        samples = 0
        rate = stream.codec_context.sample_rate
        for frame in container.decode(stream):
            samples += frame.samples
            rate = frame.sample_rate
        return Decoded(
            stream.codec_context.name, rate, stream.codec_context.channels, samples / rate
        )


def median_f0(pcm: bytes, rate: int) -> float:
    """A rough fundamental frequency (Hz) of 16-bit mono speech: the median, over loud frames,
    of the autocorrelation peak between 60 and 450 Hz. Enough to tell voices apart."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    # Sum groups of 4 samples: a crude low-pass that also makes the search 16x cheaper.
    low = [sum(samples[i : i + 4]) for i in range(0, len(samples) - 4, 4)]
    low_rate = rate / 4
    frame = 256
    shortest, longest = int(low_rate / 450), int(low_rate / 60)
    estimates = []
    for start in range(0, len(low) - frame - longest, frame):
        window = low[start : start + frame + longest]
        if sum(x * x for x in window[:frame]) < 1e9:  # silence or unvoiced
            continue
        lag = max(
            range(shortest, longest),
            key=lambda k: sum(window[i] * window[i + k] for i in range(frame)),
        )
        estimates.append(low_rate / lag)
    return statistics.median(estimates) if estimates else 0.0
