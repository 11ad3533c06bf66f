"""OpenAI Chat Completions, streamed — also any OpenAI-compatible server.

Point `base_url` at OpenAI (default), Ollama (`http://host:11434/v1`), vLLM (`http://host:8000/v1`),
llama.cpp's server (`http://host:8080/v1`) or LM Studio (`http://host:1234/v1`).

Options: `timeoutSeconds` (default 120: connect and the longest gap between two chunks),
`includeUsage` (default true; sends `stream_options.include_usage`, turn it off for servers that
reject it — usage is then estimated), `extraBody` (merged into the request JSON, e.g. Ollama's
`{"options": {"num_ctx": 8192}}`), `maxTokensParam` (`max_tokens` or `max_completion_tokens`;
default: `max_completion_tokens` for api.openai.com, which its reasoning models require,
`max_tokens` for everything else).

Tool calls arrive as argument fragments keyed by `index`; they are assembled and emitted, complete,
when the stream ends. Arguments that are not a JSON object become `{"_raw": "<text>"}` (see
ToolCall). The SDK's own retries are off: Temporal retries the activity on retryable errors.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

from deeployd.agents.providers import base
from deeployd.agents.providers.base import (
    PlatformKey,
    estimate_tokens,
    import_sdk,
    parse_tool_arguments,
    provider_errors,
    registered,
)

DEFAULT_TIMEOUT_S = 120.0
# Local servers ignore the key, but the SDK insists on one.
PLACEHOLDER_KEY = "not-needed"


def _sdk() -> Any:
    return import_sdk("openai", "openai>=1.50")


def to_openai_messages(messages: list[base.ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content or ""}
            )
        elif m.role == "assistant" and m.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


def _request_kwargs(request: base.ModelRequest) -> dict[str, Any]:
    options = request.options
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": to_openai_messages(request.messages),
        "stream": True,
    }
    if options.get("includeUsage", True):
        kwargs["stream_options"] = {"include_usage": True}
    if request.tools:
        kwargs["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if request.max_tokens is not None:
        default_param = "max_completion_tokens" if request.base_url is None else "max_tokens"
        kwargs[str(options.get("maxTokensParam") or default_param)] = request.max_tokens
    if isinstance(options.get("extraBody"), dict):
        kwargs["extra_body"] = options["extraBody"]
    return kwargs


class _PendingCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


def _slot(fragment: Any, pending: dict[int, _PendingCall]) -> int:
    """Which call a streamed fragment belongs to: its `index`, or — for servers that omit it —
    a new slot whenever a fragment brings a new call id."""
    index = getattr(fragment, "index", None)
    if index is not None:
        return int(index)
    if not pending:
        return 0
    last = max(pending)
    if fragment.id and pending[last].id and fragment.id != pending[last].id:
        return last + 1
    return last


@registered
class OpenAIProvider:
    """Chat Completions over the official `openai` SDK (streaming, tools, usage)."""

    name = "openai"
    platform_key = PlatformKey("OPENAI_API_KEY", "openai_api_key", "https://api.openai.com/v1")

    async def stream(self, request: base.ModelRequest) -> AsyncIterator[base.ProviderEvent]:
        openai = _sdk()
        api_key = request.api_key
        if not api_key:
            if request.base_url is None:
                raise base.ProviderError(
                    "openai: no API key (set the agent's apiKey, e.g. ${secrets.OPENAI_API_KEY}, "
                    "or OPENAI_API_KEY in the worker's environment)",
                    code="auth",
                    retryable=False,
                )
            api_key = PLACEHOLDER_KEY
        client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=request.base_url,
            max_retries=0,
            timeout=float(request.options.get("timeoutSeconds") or DEFAULT_TIMEOUT_S),
            # The checked baseUrl is the only host called: a redirect is an error, not a new hop.
            http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False),
        )
        pending: dict[int, _PendingCall] = {}
        buffered = 0
        text_chars = 0
        usage: base.UsageReport | None = None
        try:
            with provider_errors(openai, "openai", openai.OpenAIError):
                stream = await client.chat.completions.create(**_request_kwargs(request))
                # Leaving this block (end, error, aclose(), cancellation) closes the HTTP response.
                async with stream:
                    async for chunk in stream:
                        if chunk.usage is not None:
                            usage = base.UsageReport(
                                prompt_tokens=chunk.usage.prompt_tokens or 0,
                                completion_tokens=chunk.usage.completion_tokens or 0,
                            )
                        for choice in chunk.choices or ():
                            delta = choice.delta
                            if delta is None:
                                continue
                            if delta.content:
                                text_chars += len(delta.content)
                                yield base.TextDelta(text=delta.content)
                            for fragment in delta.tool_calls or ():
                                call = pending.setdefault(_slot(fragment, pending), _PendingCall())
                                if fragment.id:
                                    call.id = fragment.id
                                function = fragment.function
                                if function is not None:
                                    if function.name:
                                        call.name = function.name
                                    if function.arguments:
                                        buffered = base.add_argument_chars(
                                            "openai", buffered, function.arguments
                                        )
                                        call.arguments.append(function.arguments)
            for index in sorted(pending):
                call = pending[index]
                if not call.name:
                    raise base.ProviderError(
                        f"openai: tool call #{index} has no function name",
                        code="stream_error",
                        retryable=True,
                    )
                yield base.ToolCallRequest(
                    call=base.ToolCall(
                        id=call.id or f"call_{uuid.uuid4().hex[:24]}",
                        name=call.name,
                        arguments=parse_tool_arguments("".join(call.arguments)),
                    )
                )
            if usage is None:
                usage = base.UsageReport(
                    prompt_tokens=estimate_tokens(json.dumps(to_openai_messages(request.messages))),
                    completion_tokens=math.ceil((text_chars + buffered) / 4),
                    estimated=True,
                )
            yield usage
        finally:
            await client.close()
