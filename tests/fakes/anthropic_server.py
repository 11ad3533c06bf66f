"""A local Anthropic Messages API server speaking the real streaming wire format.

    async with FakeAnthropic(replies=[FakeReply(text="Hi", tool_calls=[...])]) as fake:
        request = ModelRequest(..., base_url=fake.url, api_key=fake.api_key)

`POST /v1/messages` checks the key (`x-api-key`, or `Authorization: Bearer` as newer SDKs send
it; 401 `authentication_error` otherwise) and the
`anthropic-version` header, requires `model`, `messages` and `max_tokens`, and for `stream: true`
answers server-sent events: `message_start` (usage.input_tokens), per text block
`content_block_start` / `content_block_delta` (`text_delta`, one per word) /
`content_block_stop`, a `ping`, per tool call a `tool_use` block with `input_json_delta`
fragments, then `message_delta` (`stop_reason`, cumulative `usage.output_tokens`) and
`message_stop`. Without `stream` it answers one `message` object. Error injection as in
`tests.fakes.openai_server` (`error_status` 401/429/500/529..., `fail_after_tokens` sends an
`event: error`). Replies are the same `FakeReply`/`FakeToolCall` objects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.openai_server import (
    _TOKEN,
    ConnectionDropped,
    FakeModelServer,
    FakeReply,
    FakeToolCall,
    count_words,
    fragments,
)

__all__ = ["FakeAnthropic", "FakeReply", "FakeToolCall"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic(FakeModelServer):
    base_path = ""  # the SDK appends /v1/messages itself

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    @staticmethod
    def presented_key_from(headers: Mapping[str, str]) -> str | None:
        """The API accepts `x-api-key: KEY` and (newer SDKs send this) `Authorization: Bearer KEY`."""
        if "x-api-key" in headers:
            return headers["x-api-key"]
        auth = headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def presented_key(self, request: Request) -> str | None:
        return self.presented_key_from(request.headers)

    @staticmethod
    def _error(status: int, message: str, retry_after: float | None = None) -> Response:
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        kind = _ERROR_TYPES.get(status, "api_error")
        return JSONResponse(
            {"type": "error", "error": {"type": kind, "message": message}},
            status_code=status,
            headers=headers,
        )

    async def _messages(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "invalid JSON body")
        self.record(request, body)
        if self.api_key is not None and self.presented_key(request) != self.api_key:
            return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        for required in ("model", "messages", "max_tokens"):
            if required not in body:
                return self._error(400, f"{required}: Field required")
        if any(m.get("role") not in ("user", "assistant") for m in body["messages"]):
            return self._error(400, "messages: roles must be 'user' or 'assistant'")
        reply = self.next_reply(body)
        if reply.error_status is not None:
            return self._error(reply.error_status, reply.error_message, reply.retry_after)
        message_id = f"msg_fake{next(self._ids)}"
        prompt = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else count_words(body["messages"]) + count_words(body.get("system") or "")
        )
        if not body.get("stream"):
            return JSONResponse(self._whole(reply, body, message_id, prompt))
        return StreamingResponse(
            self.guarded(self._events(reply, body, message_id, prompt)),
            media_type="text/event-stream",
        )

    def _content(self, reply: FakeReply) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for i, call in enumerate(reply.tool_calls):
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id or f"toolu_fake{i}",
                    "name": call.name,
                    "input": call.arguments if isinstance(call.arguments, dict) else {},
                }
            )
        return content

    def _whole(
        self, reply: FakeReply, body: dict[str, Any], mid: str, prompt: int
    ) -> dict[str, Any]:
        return {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": self._content(reply),
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": prompt,
                "output_tokens": reply.completion_tokens or count_words(reply.text),
            },
        }

    async def _events(
        self, reply: FakeReply, body: dict[str, Any], mid: str, prompt: int
    ) -> AsyncIterator[bytes]:
        yield _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": prompt, "output_tokens": 1},
                },
            },
        )
        index = 0
        sent = 0
        if reply.text:
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            yield _sse("ping", {"type": "ping"})
            for i, token in enumerate(_TOKEN.findall(reply.text)):
                if reply.drop_after_tokens is not None and i >= reply.drop_after_tokens:
                    raise ConnectionDropped
                if reply.fail_after_tokens is not None and i >= reply.fail_after_tokens:
                    error = {"type": "overloaded_error", "message": reply.error_message}
                    yield _sse("error", {"type": "error", "error": error})
                    return
                await self.pause(reply, first=False)
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": token},
                    },
                )
                sent += 1
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            index = 1
        for call in reply.tool_calls:
            await self.pause(reply, first=False)
            yield _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": call.id or f"toolu_fake{next(self._ids)}",
                        "name": call.name,
                        "input": {},
                    },
                },
            )
            yield _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": ""},
                },
            )
            for piece in fragments(call.arguments_json(), reply.argument_chunk_chars):
                sent += 1
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        completion = reply.completion_tokens if reply.completion_tokens is not None else sent
        yield _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": completion},
            },
        )
        yield _sse("message_stop", {"type": "message_stop"})
