"""Anthropic Messages API, streamed, over the official `anthropic` SDK.

The system prompt goes in `system=`; tool results go back as `tool_result` blocks in a user
message; consecutive messages of one role are merged (the API wants alternating turns).
Tool inputs arrive as `input_json_delta` fragments and are emitted, complete, at their
`content_block_stop`. Usage: input tokens from `message_start` (cache reads/writes included),
output tokens from the last `message_delta`.

Options: `timeoutSeconds` (default 120), `maxTokens` fallback when the request sets none
(default 4096 — the API requires one), `extraBody` (merged into the request JSON).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from deeployd.agents.providers import base
from deeployd.agents.providers.base import (
    PlatformKey,
    import_sdk,
    parse_tool_arguments,
    provider_errors,
    registered,
)

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_TOKENS = 4096


def _sdk() -> Any:
    return import_sdk("anthropic", "anthropic>=0.40")


def to_anthropic_messages(
    messages: list[base.ChatMessage],
) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, messages) in the Messages API's shape."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            if m.content:
                system.append(m.content)
            continue
        blocks: list[dict[str, Any]] = []
        if m.role == "tool":
            role = "user"
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id or "",
                    "content": m.content or "",
                }
            )
        else:
            role = m.role
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for call in m.tool_calls:
                blocks.append(
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                )
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return ("\n\n".join(system) or None), out


def _request_kwargs(request: base.ModelRequest) -> dict[str, Any]:
    system, messages = to_anthropic_messages(request.messages)
    kwargs: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens
        or int(request.options.get("maxTokens") or DEFAULT_MAX_TOKENS),
        "stream": True,
    }
    if system:
        kwargs["system"] = system
    if request.tools:
        kwargs["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    if request.temperature is not None:
        kwargs["temperature"] = request.temperature
    if isinstance(request.options.get("extraBody"), dict):
        kwargs["extra_body"] = request.options["extraBody"]
    return kwargs


@registered
class AnthropicProvider:
    """Claude models over the official `anthropic` SDK (streaming, tool use, usage)."""

    name = "anthropic"
    platform_key = PlatformKey(
        "ANTHROPIC_API_KEY", "anthropic_api_key", "https://api.anthropic.com"
    )

    async def stream(self, request: base.ModelRequest) -> AsyncIterator[base.ProviderEvent]:
        anthropic = _sdk()
        if not request.api_key:
            raise base.ProviderError(
                "anthropic: no API key (set the agent's apiKey, e.g. "
                "${secrets.ANTHROPIC_API_KEY}, or ANTHROPIC_API_KEY in the worker's environment)",
                code="auth",
                retryable=False,
            )
        client = anthropic.AsyncAnthropic(
            api_key=request.api_key,
            base_url=request.base_url,
            max_retries=0,
            timeout=float(request.options.get("timeoutSeconds") or DEFAULT_TIMEOUT_S),
            # The checked baseUrl is the only host called: a redirect is an error, not a new hop.
            http_client=anthropic.DefaultAsyncHttpxClient(follow_redirects=False),
        )
        tool_blocks: dict[int, dict[str, Any]] = {}  # index -> {id, name, parts}
        buffered = 0
        prompt_tokens = 0
        completion_tokens = 0
        try:
            with provider_errors(anthropic, "anthropic", anthropic.AnthropicError):
                stream = await client.messages.create(**_request_kwargs(request))
                # Leaving this block (end, error, aclose(), cancellation) closes the HTTP response.
                async with stream:
                    async for event in stream:
                        kind = event.type
                        if kind == "content_block_delta":
                            delta = event.delta
                            if delta.type == "text_delta":
                                if delta.text:
                                    yield base.TextDelta(text=delta.text)
                            elif delta.type == "input_json_delta":
                                block = tool_blocks.get(event.index)
                                if block is not None and delta.partial_json:
                                    buffered = base.add_argument_chars(
                                        "anthropic", buffered, delta.partial_json
                                    )
                                    block["parts"].append(delta.partial_json)
                        elif kind == "content_block_start":
                            block = event.content_block
                            if block.type == "tool_use":
                                tool_blocks[event.index] = {
                                    "id": block.id,
                                    "name": block.name,
                                    "input": getattr(block, "input", None) or {},
                                    "parts": [],
                                }
                        elif kind == "content_block_stop":
                            done = tool_blocks.pop(event.index, None)
                            if done is not None:
                                arguments = (
                                    parse_tool_arguments("".join(done["parts"]))
                                    if done["parts"]
                                    else dict(done["input"])
                                )
                                yield base.ToolCallRequest(
                                    call=base.ToolCall(
                                        id=done["id"], name=done["name"], arguments=arguments
                                    )
                                )
                        elif kind == "message_start":
                            usage = event.message.usage
                            prompt_tokens = _input_tokens(usage)
                            completion_tokens = getattr(usage, "output_tokens", 0) or 0
                        elif kind == "message_delta":
                            usage = event.usage
                            # output_tokens is cumulative; newer API versions repeat input counts.
                            completion_tokens = max(completion_tokens, usage.output_tokens or 0)
                            prompt_tokens = max(prompt_tokens, _input_tokens(usage))
            yield base.UsageReport(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        finally:
            await client.close()


def _input_tokens(usage: Any) -> int:
    return sum(
        int(getattr(usage, field, 0) or 0)
        for field in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
