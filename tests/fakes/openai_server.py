"""A local OpenAI-compatible Chat Completions server speaking the real streaming wire format.

    async with FakeOpenAI(replies=[FakeReply(text="Hi there", tool_calls=[...])]) as fake:
        request = ModelRequest(..., base_url=fake.url, api_key=fake.api_key)

`POST /v1/chat/completions` checks `Authorization: Bearer <api_key>` (401 with OpenAI's error body
otherwise) and answers, for `stream: true`, `data: {chat.completion.chunk}\n\n` lines: a role chunk,
one chunk per word of the reply text (`choices[0].delta.content`), the tool calls as
`delta.tool_calls[{index, id, type, function: {name, arguments}}]` with the arguments JSON split
into fragments, a chunk with `finish_reason`, a usage chunk (`choices: []`) when
`stream_options.include_usage` is set, then `data: [DONE]`. Without `stream` it answers one
`chat.completion` object. Each request takes the next queued `FakeReply` (else `default`, or what
`respond(body)` returns). A reply may inject an HTTP error (`error_status`: 401/429/500...) or a
mid-stream error event (`fail_after_tokens`). Every request is recorded in `requests`; a client
that goes away mid-stream is counted in `disconnects` and sets `disconnected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from deeployd.devstack import free_port

_TOKEN = re.compile(r"\S+\s*")
_WORD = re.compile(r"\S+")


@dataclass
class FakeToolCall:
    name: str
    arguments: dict[str, Any] | str  # a str is sent verbatim (e.g. to test invalid JSON)
    id: str | None = None

    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class FakeReply:
    text: str = "Hello from the fake model."
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None  # None: ≈ words in the request's messages
    completion_tokens: int | None = None  # None: words streamed + tool call fragments
    token_delay_ms: float = 0.0  # pause before each streamed chunk after the first
    error_status: int | None = None  # answer this HTTP error instead of a completion
    error_message: str = "injected error"
    retry_after: float | None = None  # Retry-After header on the error response
    fail_after_tokens: int | None = None  # send an error event after this many text chunks
    argument_chunk_chars: int = 7  # tool call arguments are streamed in fragments this long
    omit_tool_call_index: bool = False  # like some OpenAI-compatible servers (OpenAI only)
    drop_after_tokens: int | None = None  # cut the connection (no clean end) after N text chunks


class ConnectionDropped(Exception):
    """Raised inside a streaming body: uvicorn then aborts the response mid-body."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeModelServer:
    """Shared plumbing of the fake model servers: uvicorn, reply queue, request log, disconnects."""

    base_path = ""

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        replies: list[FakeReply] | None = None,
        default: FakeReply | None = None,
        respond: Callable[[dict[str, Any]], FakeReply] | None = None,
    ) -> None:
        self.api_key = api_key
        self.default = default or FakeReply()
        self.respond = respond
        self._replies: deque[FakeReply] = deque(replies or ())
        self.requests: list[Received] = []
        self.streams_started = 0
        self.streams_completed = 0
        self.disconnects = 0
        self.chunks_sent = 0
        self.disconnected = asyncio.Event()
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL to give the SDK."""
        return self.origin + self.base_path

    def app(self) -> Starlette:  # pragma: no cover - overridden
        raise NotImplementedError

    async def start(self) -> None:
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app(),
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, timeout=5)

    async def __aenter__(self) -> FakeModelServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- replies ------------------------------------------------------------------------------

    def queue(self, *replies: FakeReply) -> None:
        self._replies.extend(replies)

    def next_reply(self, body: dict[str, Any]) -> FakeReply:
        if self._replies:
            return self._replies.popleft()
        if self.respond is not None:
            return self.respond(body)
        return self.default

    def record(self, request: Request, body: dict[str, Any]) -> None:
        self.requests.append(Received(request.url.path, dict(request.headers), body))

    async def guarded(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Count what is sent and whether the client left before the end."""
        self.streams_started += 1
        finished = False
        try:
            async for chunk in chunks:
                yield chunk
                self.chunks_sent += 1
            finished = True
            self.streams_completed += 1
        finally:
            if not finished:
                self.disconnects += 1
                self.disconnected.set()

    @staticmethod
    async def pause(reply: FakeReply, first: bool) -> None:
        if reply.token_delay_ms and not first:
            await asyncio.sleep(reply.token_delay_ms / 1000)


def count_words(value: Any) -> int:
    if isinstance(value, str):
        return len(_WORD.findall(value))
    if isinstance(value, list):
        return sum(count_words(v) for v in value)
    if isinstance(value, dict):
        return sum(count_words(v) for k, v in value.items() if k in ("content", "text", "input"))
    return 0


def fragments(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(size, 1))] or [""]


class FakeOpenAI(FakeModelServer):
    base_path = "/v1"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    @staticmethod
    def _error(status: int, message: str, retry_after: float | None = None) -> Response:
        kind = {
            401: ("invalid_request_error", "invalid_api_key"),
            403: ("invalid_request_error", "unsupported_country_region_territory"),
            404: ("invalid_request_error", "model_not_found"),
            429: ("requests", "rate_limit_exceeded"),
        }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return JSONResponse(
            {"error": {"message": message, "type": kind[0], "param": None, "code": kind[1]}},
            status_code=status,
            headers=headers,
        )

    def _authorized(self, request: Request) -> bool:
        return (
            self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}"
        )

    async def _models(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._error(401, "Incorrect API key provided.")
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        self.record(request, body)
        if not self._authorized(request):
            return self._error(401, "Incorrect API key provided: check your key.")
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._error(400, "'model' and 'messages' are required properties.")
        reply = self.next_reply(body)
        if reply.error_status is not None:
            return self._error(reply.error_status, reply.error_message, reply.retry_after)
        completion_id = f"chatcmpl-fake{next(self._ids)}"
        prompt_tokens = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else count_words(body["messages"])
        )
        if not body.get("stream"):
            return JSONResponse(self._whole(reply, body, completion_id, prompt_tokens))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self.guarded(self._chunks(reply, body, completion_id, prompt_tokens, include_usage)),
            media_type="text/event-stream",
        )

    def _whole(
        self, reply: FakeReply, body: dict[str, Any], cid: str, prompt: int
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_fake{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        completion = reply.completion_tokens or count_words(reply.text)
        return {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    async def _chunks(
        self, reply: FakeReply, body: dict[str, Any], cid: str, prompt: int, include_usage: bool
    ) -> AsyncIterator[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
            payload: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "system_fingerprint": "fp_fake",
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        sent = 0
        for i, token in enumerate(_TOKEN.findall(reply.text)):
            if reply.drop_after_tokens is not None and i >= reply.drop_after_tokens:
                raise ConnectionDropped
            if reply.fail_after_tokens is not None and i >= reply.fail_after_tokens:
                error = {"message": reply.error_message, "type": "server_error", "code": None}
                yield f"data: {json.dumps({'error': error})}\n\n".encode()
                return
            await self.pause(reply, first=False)
            yield chunk({"content": token})
            sent += 1
        for index, call in enumerate(reply.tool_calls):
            await self.pause(reply, first=False)
            where = {} if reply.omit_tool_call_index else {"index": index}
            yield chunk(
                {
                    "tool_calls": [
                        {
                            **where,
                            "id": call.id or f"call_fake{next(self._ids)}",
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            for piece in fragments(call.arguments_json(), reply.argument_chunk_chars):
                sent += 1
                yield chunk({"tool_calls": [{**where, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if include_usage:
            completion = reply.completion_tokens if reply.completion_tokens is not None else sent
            yield chunk(
                None,
                usage={
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            )
        yield b"data: [DONE]\n\n"
