"""An audio stream as an HTTP response: chunked body, disconnect watch, accounting on close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from deeployd.voice.service import VoiceStream


class AudioStreamResponse(Response):
    """Streams a `VoiceStream`, watches for the client going away, and always closes it.

    A plain StreamingResponse only notices a disconnect on its next write and leaves the
    generator to the garbage collector; here the disconnect cancels synthesis at once and the
    stream is closed (its usage row written, shielded from cancellation) before the request
    ends. `chunks`, when given, is what is sent instead of the stream's own chunks (the same
    chunks, wrapped, e.g. to end when the caller's key is revoked)."""

    def __init__(
        self,
        stream: VoiceStream,
        *,
        headers: dict[str, str],
        chunks: AsyncIterable[bytes] | None = None,
    ) -> None:
        # Like StreamingResponse: no body attribute, so no Content-Length header (chunked).
        self.status_code = 200
        self.media_type = stream.media_type
        self.background = None
        self.init_headers(headers)
        self.stream = stream
        self.chunks = chunks if chunks is not None else stream.chunks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def pump() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        pumping = asyncio.create_task(pump(), name="voice-send")
        watcher = asyncio.create_task(watch(), name="voice-disconnect-watch")
        try:
            await asyncio.wait({pumping, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not pumping.done():  # the client went away: stop synthesising now
                self.stream.cancel()
                pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await pumping
        finally:
            watcher.cancel()
            pumping.cancel()
            self.stream.cancel()
            # Accounting must survive the request task being cancelled (client gone, shutdown).
            await asyncio.shield(self.stream.close())
