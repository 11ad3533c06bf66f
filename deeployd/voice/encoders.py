"""Streaming audio encoders on PyAV (the FFmpeg it ships has libmp3lame, libopus, aac and flac).

One `StreamEncoder` per response keeps ONE encoder and muxer alive for the whole stream, so the
client receives a single continuous file (one Ogg stream, one FLAC header, one WAV header) and
every chunk handed out ends on a frame (or Ogg page) boundary: the muxer only ever writes whole
packets, and we hand out exactly what it wrote after each sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import av
from av.audio.stream import AudioStream


@dataclass(frozen=True)
class AudioFormat:
    name: str
    container: str | None  # FFmpeg muxer; None = raw PCM, no container
    codec: str | None
    fixed_rate: int | None  # the codec only takes this rate (Opus); None = keep the source rate
    description: str
    options: tuple[tuple[str, str], ...] = ()  # muxer options
    codec_options: tuple[tuple[str, str], ...] = ()
    bit_rate: int | None = None

    def output_rate(self, source_rate: int) -> int:
        return self.fixed_rate or source_rate

    def content_type(self, rate: int, channels: int = 1) -> str:
        return {
            "mp3": "audio/mpeg",
            "opus": "audio/ogg; codecs=opus",
            "aac": "audio/aac",
            "flac": "audio/flac",
            "wav": "audio/wav",
            "pcm": f"audio/L16;rate={rate};channels={channels}",
        }[self.name]


FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        # Speech at 22.05 kHz mono: 48 kb/s is transparent enough, and LAME's fast mode (-q 7)
        # halves the encoding cost, which is most of a stream's CPU (eSpeak itself is ~1%).
        AudioFormat(
            "mp3",
            "mp3",
            "libmp3lame",
            None,
            "MPEG-2 Layer III frames, 48 kb/s",
            codec_options=(("compression_level", "7"),),
            bit_rate=48000,
        ),
        # Opus runs at 48 kHz; small Ogg pages so audio leaves as soon as a sentence is encoded.
        AudioFormat(
            "opus",
            "ogg",
            "libopus",
            48000,
            "Opus in Ogg, 48 kHz, 32 kb/s",
            (("page_duration", "20000"),),
            codec_options=(("compression_level", "5"),),  # complexity 5 of 10: speech is easy
            bit_rate=32000,
        ),
        AudioFormat(
            "aac",
            "adts",
            "aac",
            None,
            "AAC-LC in ADTS frames, 48 kb/s",
            codec_options=(("aac_coder", "fast"),),
            bit_rate=48000,
        ),
        AudioFormat("flac", "flac", "flac", None, "FLAC, lossless"),
        AudioFormat("wav", "wav", "pcm_s16le", None, "RIFF WAVE, 16-bit PCM, streaming sizes"),
        AudioFormat("pcm", None, None, None, "raw 16-bit little-endian mono PCM"),
    )
}
DEFAULT_FORMAT = "mp3"


class _Sink:
    """A write-only, non-seekable file for the muxer: we take what it wrote after each call."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class StreamEncoder:
    """Encodes 16-bit mono PCM chunks into one continuous stream of `fmt`. Not thread-safe:
    one stream's calls run one at a time (they may run on any worker thread)."""

    def __init__(self, fmt: AudioFormat, source_rate: int) -> None:
        self.format = fmt
        self.source_rate = source_rate
        self.rate = fmt.output_rate(source_rate)
        self.samples_in = 0
        self._closed = False
        if fmt.container is None:
            return
        self._sink = _Sink()
        self._container = av.open(self._sink, "w", format=fmt.container, options=dict(fmt.options))
        assert fmt.codec is not None
        self._stream = cast(
            AudioStream,
            self._container.add_stream(
                fmt.codec, rate=self.rate, layout="mono", options=dict(fmt.codec_options)
            ),
        )
        ctx = self._stream.codec_context
        if fmt.bit_rate:
            ctx.bit_rate = fmt.bit_rate
        # Encoders want their own sample format and (Opus, AAC, MP3) whole frames of a fixed size.
        self._resampler = av.AudioResampler(
            format=ctx.format.name if ctx.format else "s16",
            layout="mono",
            rate=self.rate,
            frame_size=ctx.frame_size or None,
        )

    @property
    def duration_s(self) -> float:
        return self.samples_in / self.source_rate

    def encode(self, pcm: bytes) -> bytes:
        """Feed PCM; returns the whole frames the encoder produced so far (may be empty)."""
        samples = len(pcm) // 2
        self.samples_in += samples
        if self.format.container is None:
            return pcm[: samples * 2]
        if samples == 0:
            return self._sink.take()
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(pcm[: samples * 2])
        frame.sample_rate = self.source_rate
        for resampled in self._resampler.resample(frame):
            for packet in self._stream.encode(resampled):
                self._container.mux(packet)
        return self._sink.take()

    def finish(self) -> bytes:
        """Flush the encoder's delay line and the container trailer."""
        if self._closed or self.format.container is None:
            self._closed = True
            return b""
        self._closed = True
        for resampled in self._resampler.resample(None):
            for packet in self._stream.encode(resampled):
                self._container.mux(packet)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.take()

    def close(self) -> None:
        """Release FFmpeg resources without producing output (a cut stream)."""
        if not self._closed and self.format.container is not None:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # a half-written stream may fail its trailer; nothing to deliver
                pass


def encoders_available() -> dict[str, bool]:
    """Which formats this PyAV build can encode (reported by GET /api/voice/voices)."""
    result = {}
    for fmt in FORMATS.values():
        if fmt.codec is None:
            result[fmt.name] = True
            continue
        try:
            av.codec.Codec(fmt.codec, "w")
            result[fmt.name] = True
        except Exception:
            result[fmt.name] = False
    return result
