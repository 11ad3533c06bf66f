"""The scripted provider (deterministic, not a language model), the registry and pricing."""

from __future__ import annotations

import contextlib
import json

import pytest

from deeployd.agents.pricing import Pricing, cost_usd, price_for
from deeployd.agents.providers import (
    DEMO_SCRIPT,
    ChatMessage,
    ModelRequest,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolCallRequest,
    UsageReport,
    default_api_key,
    get_provider,
)


def scripted(messages: list[ChatMessage], **options) -> ModelRequest:
    return ModelRequest(
        provider="scripted",
        model="scripted",
        messages=messages,
        options={"tokenDelayMs": 0, **options},
    )


async def collect(request: ModelRequest) -> list:
    async with contextlib.aclosing(get_provider("scripted").stream(request)) as events:
        return [event async for event in events]


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_demo_script_plays_turn_by_turn_with_tool_results_spliced_in() -> None:
    history = [ChatMessage(role="user", content="Show me what you can do")]

    first = await collect(scripted(history, script=DEMO_SCRIPT))
    assert text_of(first) == DEMO_SCRIPT[0]["text"]
    assert sum(isinstance(e, TextDelta) for e in first) == len(DEMO_SCRIPT[0]["text"].split())
    (call,) = [e.call for e in first if isinstance(e, ToolCallRequest)]
    assert (call.name, call.arguments) == ("calculator", {"expression": "(2 + 3) * 7"})
    usage = first[-1]
    assert isinstance(usage, UsageReport) and usage.prompt_tokens > 0
    assert usage.completion_tokens >= len(DEMO_SCRIPT[0]["text"].split())

    history += [
        ChatMessage(role="assistant", content=text_of(first), tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id=call.id, content=json.dumps({"result": 35})),
    ]
    second = await collect(scripted(history, script=DEMO_SCRIPT))
    assert text_of(second).startswith("The calculator says 35. ")
    (call2,) = [e.call for e in second if isinstance(e, ToolCallRequest)]
    assert call2.name == "http_request" and call2.id != call.id

    history += [
        ChatMessage(role="assistant", content=text_of(second), tool_calls=[call2]),
        ChatMessage(role="tool", tool_call_id=call2.id, content=json.dumps({"status": 200})),
    ]
    third = await collect(scripted(history, script=DEMO_SCRIPT))
    assert "returned: 200." in text_of(third)
    assert "not written by a language model" in text_of(third)
    assert not any(isinstance(e, ToolCallRequest) for e in third)


async def test_same_input_gives_the_same_stream() -> None:
    history = [ChatMessage(role="user", content="hello")]
    assert await collect(scripted(history, script=DEMO_SCRIPT)) == await collect(
        scripted(history, script=DEMO_SCRIPT)
    )


async def test_when_the_script_runs_out_it_echoes_the_last_user_message() -> None:
    history = [
        ChatMessage(role="user", content="Remember   the milk"),
        ChatMessage(
            role="assistant", tool_calls=[ToolCall(id="c", name="memory_write", arguments={})]
        ),
        ChatMessage(role="tool", tool_call_id="c", content="ok"),
    ]
    events = await collect(scripted(history, script=[{"toolCalls": [{"name": "memory_write"}]}]))
    assert text_of(events) == "(scripted reply) You said: Remember the milk"
    assert not any(isinstance(e, ToolCallRequest) for e in events)
    # no script at all: the same echo, on the first call
    events = await collect(scripted([ChatMessage(role="user", content="hi")]))
    assert text_of(events) == "(scripted reply) You said: hi"


async def test_placeholders_and_forced_turn() -> None:
    script = [
        {"text": "A"},
        {"text": "You asked {{lastUserMessage}}; got {{lastToolResult.a.b}} {{ notOurs }}"},
        {"text": "Result: {{lastToolResult.status|lastToolResult.error}}"},
    ]
    history = [
        ChatMessage(role="user", content="why?"),
        ChatMessage(role="tool", tool_call_id="x", content=json.dumps({"a": {"b": [1, 2]}})),
    ]
    events = await collect(scripted(history, script=script, turnIndex=1))
    assert text_of(events) == "You asked why?; got [1, 2] {{ notOurs }}"
    # a rejected approval: no status, so the error is spliced in
    history[-1] = ChatMessage(
        role="tool", tool_call_id="x", content=json.dumps({"error": "the call was not approved"})
    )
    events = await collect(scripted(history, script=script, turnIndex=2))
    assert text_of(events) == "Result: the call was not approved"


async def test_a_scripted_error_turn_raises_after_its_text() -> None:
    script = [
        {"text": "partial", "error": {"message": "quota", "code": "rate_limit", "retryable": True}}
    ]
    stream = get_provider("scripted").stream(
        scripted([ChatMessage(role="user", content="x")], script=script)
    )
    assert (await anext(stream)).text == "partial"
    with pytest.raises(ProviderError) as info:
        await anext(stream)
    assert (info.value.code, info.value.retryable) == ("rate_limit", True)


async def test_invalid_script_is_a_config_error() -> None:
    with pytest.raises(ProviderError) as info:
        await collect(scripted([ChatMessage(role="user", content="x")], script=[{"txt": "typo"}]))
    assert info.value.code == "config" and not info.value.retryable
    assert "txt" in info.value.message


def test_registry_and_default_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {get_provider(n).name for n in ("openai", "anthropic", "scripted")} == {
        "openai",
        "anthropic",
        "scripted",
    }
    with pytest.raises(KeyError):
        get_provider("gpt")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert default_api_key("openai", None) == "sk-env"
    assert default_api_key("anthropic", None) is None
    assert default_api_key("scripted", None) is None


def test_pricing_by_longest_prefix_with_overrides() -> None:
    assert cost_usd("gpt-4o", 1_000_000, 1_000_000) == 12.5
    # the dated mini model is priced as gpt-4o-mini, not gpt-4o
    assert cost_usd("gpt-4o-mini-2024-07-18", 1000, 500) == 0.00045
    assert price_for("claude-3-5-sonnet-latest") == price_for("claude-3-5-sonnet")
    assert cost_usd("claude-sonnet-4-20250514", 2000, 1000) == 0.021
    assert cost_usd("claude-opus-4-20250514", 1000, 1000) == 0.09
    assert cost_usd("openai/gpt-4.1-mini", 1000, 1000) == 0.002
    assert cost_usd("llama3.1:8b", 10_000, 10_000) == 0.0  # local models are free
    assert cost_usd("gpt-4o", 1000, 1000, provider="scripted") == 0.0
    override = Pricing.model_validate({"inputPerMillion": 1, "outputPerMillion": 3})
    assert cost_usd("anything", 1000, 1000, override, provider="scripted") == 0.004
    assert cost_usd("gpt-4o-mini", 1, 1) == 0.00000075  # rounded to 8 decimals
    assert override.model_dump(by_alias=True) == {"inputPerMillion": 1.0, "outputPerMillion": 3.0}
