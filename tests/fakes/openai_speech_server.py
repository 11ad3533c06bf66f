"""A local OpenAI-compatible `POST /v1/audio/speech` server (the API OpenAI, Kokoro-FastAPI and
openedai-speech/Piper servers all speak), for testing the `openai` voice provider.

It checks what OpenAI checks: `Authorization: Bearer <api_key>` (401 with OpenAI's error body
otherwise); a JSON body with `model`, `input` (1..4096 chars), `voice` (one it knows),
`response_format` (mp3, opus, aac, flac, wav, pcm; default mp3) and `speed` (0.25..4.0), 400 with
`{"error": {...}}` naming the bad parameter otherwise. It answers real audio (a tone lasting
0.35 s per word, 24 kHz mono, as OpenAI's `pcm` is) with `Transfer-Encoding: chunked` in several
chunks. With `hold = True` it sends the first chunk and then waits for `release` before the rest,
so a test can prove the audio is relayed while the upstream is still producing it. Every request
is recorded in `requests`.
"""

from __future__ import annotations

import array
import asyncio
import json
import math
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from deeployd.voice.encoders import FORMATS, StreamEncoder

RATE = 24000
SECONDS_PER_WORD = 0.35
VOICES = {
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
}


def tone(words: int, pitch: float = 220.0) -> bytes:
    samples = int(RATE * SECONDS_PER_WORD * max(words, 1))
    return array.array(
        "h", (int(6000 * math.sin(2 * math.pi * pitch * i / RATE)) for i in range(samples))
    ).tobytes()


def render(text: str, response_format: str) -> bytes:
    pcm = tone(len(text.split()))
    encoder = StreamEncoder(FORMATS[response_format], RATE)
    return encoder.encode(pcm) + encoder.finish()


def _error(status: int, message: str, param: str | None, code: str) -> JSONResponse:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return JSONResponse(body, status_code=status)


@dataclass
class FakeSpeech:
    api_key: str = "sk-test-speech"
    chunks: int = 4
    hold: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/audio/speech", self._speech, methods=["POST"])])

    async def _speech(self, request: Request) -> JSONResponse | StreamingResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", None, "invalid_api_key")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(
                400, "We could not parse the JSON body of your request.", None, "invalid_json"
            )
        self.requests.append(body)
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _error(
                400, "you must provide a model parameter", "model", "missing_required_parameter"
            )
        text = body.get("input")
        if not isinstance(text, str) or not 1 <= len(text) <= 4096:
            return _error(400, "input must be 1 to 4096 characters", "input", "invalid_value")
        if body.get("voice") not in VOICES:
            return _error(400, f"Invalid voice {body.get('voice')!r}", "voice", "invalid_value")
        response_format = body.get("response_format", "mp3")
        if response_format not in FORMATS:
            return _error(400, "Invalid response_format", "response_format", "invalid_value")
        speed = body.get("speed", 1.0)
        if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
            return _error(400, "speed must be between 0.25 and 4.0", "speed", "invalid_value")
        audio = render(text, response_format)
        size = -(-len(audio) // self.chunks)
        parts = [audio[i : i + size] for i in range(0, len(audio), size)]
        self.sent.append(audio)

        async def body_chunks():  # type: ignore[no-untyped-def]
            for index, part in enumerate(parts):
                if index == 1 and self.hold:
                    await self.release.wait()
                yield part
                await asyncio.sleep(0)

        media = FORMATS[response_format].content_type(RATE)
        return StreamingResponse(body_chunks(), media_type=media)
