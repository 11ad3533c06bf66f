"""The `anthropic` provider against a local server speaking the Messages API's streaming events."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from deeployd.agents.providers import (
    ChatMessage,
    ModelRequest,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolCallRequest,
    ToolSpec,
    UsageReport,
    get_provider,
)
from tests.fakes.anthropic_server import FakeAnthropic, FakeReply, FakeToolCall

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate arithmetic.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
)


def request_for(
    fake: FakeAnthropic, messages: list[ChatMessage] | None = None, **kw
) -> ModelRequest:
    return ModelRequest(
        provider="anthropic",
        model="claude-sonnet-4-20250514",
        messages=messages or [ChatMessage(role="user", content="Hello there")],
        base_url=fake.url,
        api_key=fake.api_key,
        **kw,
    )


async def collect(request: ModelRequest) -> list:
    async with contextlib.aclosing(get_provider("anthropic").stream(request)) as events:
        return [event async for event in events]


async def test_streams_text_tool_use_and_usage_and_sends_the_right_request() -> None:
    reply = FakeReply(
        text="Let me compute that.",
        tool_calls=[
            FakeToolCall("calculator", {"expression": "(2 + 3) * 7"}, id="toolu_A"),
            FakeToolCall("memory_write", {"content": 'likes {braces} and "quotes"'}, id="toolu_B"),
        ],
        prompt_tokens=120,
        completion_tokens=33,
    )
    history = [
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="system", content="Use tools."),
        ChatMessage(role="user", content="What is 2+3?"),
        ChatMessage(
            role="assistant",
            content="Checking.",
            tool_calls=[
                ToolCall(id="t1", name="calculator", arguments={"expression": "2+3"}),
                ToolCall(id="t2", name="current_time", arguments={}),
            ],
        ),
        ChatMessage(role="tool", tool_call_id="t1", content='{"result": 5}'),
        ChatMessage(role="tool", tool_call_id="t2", content="12:00"),
        ChatMessage(role="user", content="And times seven?"),
    ]
    async with FakeAnthropic(replies=[reply]) as fake:
        events = await collect(request_for(fake, history, tools=[CALCULATOR], max_tokens=256))

    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts == ["Let ", "me ", "compute ", "that."]
    calls = [e.call for e in events if isinstance(e, ToolCallRequest)]
    assert calls == [
        ToolCall(id="toolu_A", name="calculator", arguments={"expression": "(2 + 3) * 7"}),
        ToolCall(
            id="toolu_B", name="memory_write", arguments={"content": 'likes {braces} and "quotes"'}
        ),
    ]
    assert events[-1] == UsageReport(prompt_tokens=120, completion_tokens=33)

    (received,) = fake.requests
    assert received.path == "/v1/messages"
    assert FakeAnthropic.presented_key_from(received.headers) == "test-key"
    assert received.headers.get("anthropic-version")
    body = received.body
    assert body["model"] == "claude-sonnet-4-20250514"
    assert body["stream"] is True
    assert body["max_tokens"] == 256
    assert body["system"] == "You are terse.\n\nUse tools."
    assert body["tools"] == [
        {
            "name": "calculator",
            "description": "Evaluate arithmetic.",
            "input_schema": CALCULATOR.parameters,
        }
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is 2+3?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "calculator",
                    "input": {"expression": "2+3"},
                },
                {"type": "tool_use", "id": "t2", "name": "current_time", "input": {}},
            ],
        },
        {
            # both tool results, then the next user text, merged into one user turn
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": '{"result": 5}'},
                {"type": "tool_result", "tool_use_id": "t2", "content": "12:00"},
                {"type": "text", "text": "And times seven?"},
            ],
        },
    ]


async def test_default_max_tokens_and_counted_usage() -> None:
    async with FakeAnthropic(replies=[FakeReply(text="one two three")]) as fake:
        events = await collect(request_for(fake))
    assert fake.requests[0].body["max_tokens"] == 4096  # the API requires one
    usage = events[-1]
    assert isinstance(usage, UsageReport)
    assert usage.completion_tokens == 3 and usage.prompt_tokens == 2  # "Hello there"


async def test_missing_key_fails_fast_as_auth() -> None:
    request = ModelRequest(
        provider="anthropic",
        model="claude-3-5-haiku",
        messages=[ChatMessage(role="user", content="hi")],
    )
    with pytest.raises(ProviderError) as info:
        await collect(request)
    assert info.value.code == "auth" and not info.value.retryable


@pytest.mark.parametrize(
    ("reply", "code", "retryable"),
    [
        (FakeReply(error_status=401, error_message="invalid x-api-key"), "auth", False),
        (
            FakeReply(error_status=429, error_message="rate limited", retry_after=3),
            "rate_limit",
            True,
        ),
        (FakeReply(error_status=529, error_message="Overloaded"), "server_error", True),
        (FakeReply(error_status=500, error_message="internal"), "server_error", True),
        (FakeReply(error_status=400, error_message="messages: bad"), "bad_request", False),
        (
            FakeReply(text="a b c d", fail_after_tokens=1, error_message="Overloaded"),
            "stream_error",
            True,
        ),
    ],
)
async def test_errors_map_to_provider_errors(reply: FakeReply, code: str, retryable: bool) -> None:
    async with FakeAnthropic(replies=[reply]) as fake:
        with pytest.raises(ProviderError) as info:
            await collect(request_for(fake))
    assert (info.value.code, info.value.retryable) == (code, retryable)
    assert reply.error_message in info.value.message
    if reply.retry_after is not None:
        assert info.value.retry_after_s == reply.retry_after


async def test_wrong_key_is_an_auth_error() -> None:
    async with FakeAnthropic(api_key="right") as fake:
        request = request_for(fake)
        request.api_key = "wrong"
        with pytest.raises(ProviderError) as info:
            await collect(request)
    assert info.value.code == "auth" and info.value.status == 401


async def test_a_connection_cut_mid_stream_is_a_retryable_connection_error() -> None:
    async with FakeAnthropic(
        replies=[FakeReply(text="one two three four", drop_after_tokens=2)]
    ) as fake:
        stream = get_provider("anthropic").stream(request_for(fake))
        texts = []
        with pytest.raises(ProviderError) as info:
            async for event in stream:
                texts.append(event.text)
    assert texts == ["one ", "two "]
    assert (info.value.code, info.value.retryable) == ("connection", True)


async def test_closing_the_iterator_mid_stream_aborts_the_http_stream() -> None:
    words = " ".join(f"w{i}" for i in range(200))
    async with FakeAnthropic(replies=[FakeReply(text=words, token_delay_ms=20)]) as fake:
        stream = get_provider("anthropic").stream(request_for(fake))
        received = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        await asyncio.wait_for(fake.disconnected.wait(), timeout=10)
    assert [e.text for e in received] == ["w0 ", "w1 ", "w2 "]
    assert fake.disconnects == 1 and fake.streams_completed == 0
    assert fake.chunks_sent < 100
