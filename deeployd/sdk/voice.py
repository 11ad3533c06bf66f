"""`client.voice`: text-to-speech as a stream of audio bytes, voices, usage, run speech."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from deeployd.sdk.resource import Resource, api_error, given


class VoiceApi(Resource):
    async def tts_stream(
        self,
        text: str,
        voice: str = "alloy",
        format: str = "mp3",
        *,
        speed: float | None = None,
        provider: str | None = None,
        engine: str | None = None,
        language: str | None = None,
    ) -> AsyncIterator[bytes]:
        """Audio bytes as the server synthesises them (each chunk ends on a frame boundary).

        `async for chunk in client.voice.tts_stream("Hello!", voice="nova"): player.feed(chunk)`
        """
        options = {"speed": speed, "provider": provider, "engine": engine, "language": language}
        body = {"text": text, "voice": voice, "format": format, **given(options)}
        async for chunk in self._audio("POST", "/api/voice/tts/stream", json=body):
            yield chunk

    async def run_speech(
        self, run_id: str, voice: str = "alloy", format: str = "mp3", **params: Any
    ) -> AsyncIterator[bytes]:
        """Audio of a run's answer, sentence by sentence while its tokens arrive."""
        query = {"voice": voice, "format": format, **{k: str(v) for k, v in params.items()}}
        async for chunk in self._audio("GET", f"/api/runs/{run_id}/speech", params=query):
            yield chunk

    async def voices(self) -> dict[str, Any]:
        return await self._object("GET", "/api/voice/voices")

    async def usage(self, since: str | None = None) -> dict[str, Any]:
        params = {"since": since} if since else None
        return await self._object("GET", "/api/voice/usage", params=params)

    async def _audio(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[bytes]:
        # No overall deadline: a long text is a long stream. Each read may wait up to 60 s.
        timeout = httpx.Timeout(30.0, read=60.0)
        async with self._client.http.stream(method, path, timeout=timeout, **kwargs) as response:
            if response.status_code >= 400:
                raise api_error(response.status_code, await response.aread())
            async for chunk in response.aiter_raw():
                if chunk:
                    yield chunk
