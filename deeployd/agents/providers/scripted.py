"""The scripted provider: a deterministic stand-in for a model. It is NOT a language model.

It understands nothing: it replays the turns configured in `options["script"]`, word by word,
so demos, tests and benchmarks exercise the whole streaming path (tokens, tool calls, approvals,
usage, cost) without an API key or a GPU. To talk to a real model, set the agent's `provider` to
`openai` (OpenAI or any OpenAI-compatible server: Ollama, vLLM, llama.cpp, LM Studio) or
`anthropic` — see docs/agents-providers.md.

Options:
- `script`: a list of turns. Turn k answers the k-th model call of the run (k = number of
  assistant messages after the last user message), so a run that calls a tool moves on to the
  next turn when the tool result comes back. A turn is
  `{"text": "...", "toolCalls": [{"name": "calculator", "arguments": {...}}], "error": {...}}`
  (all keys optional). `text` may use `{{lastToolResult}}` (the last tool message's content),
  `{{lastToolResult.a.b}}` (a field of it when it is JSON), `{{lastUserMessage}}`, and
  alternatives `{{lastToolResult.status|lastToolResult.error}}` (the first non-empty one).
  `error` (`{"message", "code", "retryable"}`) raises a ProviderError after the text: for
  exercising error handling. Once the script has no turn left, the reply is a short final
  answer echoing the last user message (and no tool calls, so the run ends).
- `tokenDelayMs` (default 15): pause between streamed tokens.
- `turnIndex`: force which turn to play (overrides the count above).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deeployd.agents.providers import base
from deeployd.agents.providers.base import registered

DEFAULT_TOKEN_DELAY_MS = 15.0
MAX_TOKEN_DELAY_MS = 10_000.0
_TOKEN = re.compile(r"\S+\s*")
_WORD = re.compile(r"\S+")
_PLACEHOLDER = re.compile(r"\{\{([^{}]{1,200})\}\}")
_REFERENCE = re.compile(r"^(lastToolResult|lastUserMessage)((?:\.[A-Za-z0-9_\-]+)*)$")
# A tool result can be a whole web page: only this much of it is spliced into a scripted reply.
MAX_SUBSTITUTION_CHARS = 500


class ScriptedToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class ScriptedError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = "scripted failure"
    code: str = "stream_error"
    retryable: bool = False


class ScriptTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    text: str | None = None
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list, alias="toolCalls")
    error: ScriptedError | None = None


class ScriptOptions(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    script: list[ScriptTurn] = Field(default_factory=list, max_length=100)
    token_delay_ms: float = Field(
        default=DEFAULT_TOKEN_DELAY_MS, ge=0, le=MAX_TOKEN_DELAY_MS, alias="tokenDelayMs"
    )
    turn_index: int | None = Field(default=None, ge=0, alias="turnIndex")


def validate_options(options: dict[str, Any]) -> ScriptOptions:
    """Parse the scripted provider's options; raises pydantic.ValidationError (locs are camelCase)."""
    return ScriptOptions.model_validate(options)


# The demo conversation: streams a sentence, calls the calculator, then calls http_request (which
# the demo agent lists in `approvalRequired`, so the run waits for a human), then answers.
DEMO_SCRIPT: list[dict[str, Any]] = [
    {
        "text": "Let me work that out. First I'll ask the calculator for (2 + 3) * 7.",
        "toolCalls": [{"name": "calculator", "arguments": {"expression": "(2 + 3) * 7"}}],
    },
    {
        "text": "The calculator says {{lastToolResult.result}}. Next I'll fetch example.com, "
        "which needs a human's approval.",
        "toolCalls": [
            {"name": "http_request", "arguments": {"method": "GET", "url": "https://example.com/"}}
        ],
    },
    {
        "text": "Done: (2 + 3) * 7 = 35, and the web request returned: "
        "{{lastToolResult.status|lastToolResult.error}}. (This reply was played by the scripted "
        "provider; it was not written by a language model.)",
    },
]
DEMO_TOOLS = ["calculator", "http_request", "current_time"]
DEMO_APPROVAL_REQUIRED = ["http_request"]


@registered
class ScriptedProvider:
    """Replays `options["script"]`; deterministic; see the module docstring. Not a language model."""

    name = "scripted"

    async def stream(self, request: base.ModelRequest) -> AsyncIterator[base.ProviderEvent]:
        try:
            options = validate_options(request.options)
        except ValidationError as exc:
            raise base.ProviderError(
                f"scripted: invalid options: {exc.errors()[0]['msg']} at "
                f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}",
                code="config",
                retryable=False,
            ) from exc
        messages = request.messages
        turn_index = options.turn_index if options.turn_index is not None else _turn_index(messages)
        last_user = _last_content(messages, "user")
        if turn_index < len(options.script):
            turn = options.script[turn_index]
        else:
            turn = ScriptTurn(text=f"(scripted reply) You said: {_clip(last_user)}")
        text = _render(turn.text or "", messages)
        delay = options.token_delay_ms / 1000.0

        completion = 0
        for i, token in enumerate(_TOKEN.findall(text)):
            if i and delay:
                await asyncio.sleep(delay)
            completion += 1
            yield base.TextDelta(text=token)
        if turn.error is not None:
            raise base.ProviderError(
                turn.error.message, code=turn.error.code, retryable=turn.error.retryable
            )
        for j, scripted in enumerate(turn.tool_calls):
            if delay:
                await asyncio.sleep(delay)
            call = base.ToolCall(
                # Deterministic and unique within a conversation (the history only grows).
                id=scripted.id or f"call_scripted_{len(messages)}_{j}",
                name=scripted.name,
                arguments=scripted.arguments,
            )
            completion += _word_count(json.dumps(call.arguments)) + 1
            yield base.ToolCallRequest(call=call)
        yield base.UsageReport(prompt_tokens=_prompt_tokens(request), completion_tokens=completion)


def _turn_index(messages: list[base.ChatMessage]) -> int:
    count = 0
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role == "assistant":
            count += 1
    return count


def _last_content(messages: list[base.ChatMessage], role: str) -> str:
    for message in reversed(messages):
        if message.role == role:
            return message.content or ""
    return ""


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_SUBSTITUTION_CHARS:
        return text[: MAX_SUBSTITUTION_CHARS - 1] + "…"
    return text


def _render(template: str, messages: list[base.ChatMessage]) -> str:
    if "{{" not in template:
        return template

    def resolve(reference: str) -> str | None:
        match = _REFERENCE.match(reference.strip())
        if match is None:
            return None
        source, path = match.group(1), match.group(2)
        if source == "lastUserMessage":
            return _clip(_last_content(messages, "user"))
        raw = _last_content(messages, "tool")
        if not path:
            return _clip(raw)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            return _clip(raw)  # not JSON: the whole text is the best answer
        for key in path.strip(".").split("."):
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return ""
        return _clip(value if isinstance(value, str) else json.dumps(value))

    def substitute(match: re.Match[str]) -> str:
        # `{{a|b}}`: the first alternative that resolves to non-empty text.
        alternatives = match.group(1).split("|")
        resolved = [resolve(a) for a in alternatives]
        if any(r is None for r in resolved):
            return match.group(0)  # not a placeholder of ours: leave the text alone
        return next((r for r in resolved if r), "")

    return _PLACEHOLDER.sub(substitute, template)


def _word_count(text: str) -> int:
    return len(_WORD.findall(text))


def _prompt_tokens(request: base.ModelRequest) -> int:
    """≈ words in the input: message text, tool call arguments, tool definitions."""
    total = 0
    for message in request.messages:
        total += 4 + _word_count(message.content or "")  # a few tokens of per-message framing
        for call in message.tool_calls:
            total += 1 + _word_count(json.dumps(call.arguments))
    for tool in request.tools:
        total += _word_count(tool.description) + _word_count(json.dumps(tool.parameters))
    return total
