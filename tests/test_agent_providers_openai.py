"""The `openai` provider against a local server speaking OpenAI's streaming wire format."""

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
from deeployd.agents.tools import ToolError, get_tool
from deeployd.devstack import free_port
from tests.fakes.openai_server import FakeOpenAI, FakeReply, FakeToolCall

CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate arithmetic.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}},
)


def request_for(fake: FakeOpenAI, messages: list[ChatMessage] | None = None, **kw) -> ModelRequest:
    return ModelRequest(
        provider="openai",
        model="gpt-4o-mini",
        messages=messages or [ChatMessage(role="user", content="Hello there")],
        base_url=fake.url,
        api_key=fake.api_key,
        **kw,
    )


async def collect(request: ModelRequest) -> list:
    async with contextlib.aclosing(get_provider("openai").stream(request)) as events:
        return [event async for event in events]


async def test_streams_text_tool_calls_and_usage_and_sends_the_right_request() -> None:
    reply = FakeReply(
        text="Let me compute that for you.",
        tool_calls=[
            FakeToolCall("calculator", {"expression": "(2 + 3) * 7"}, id="call_A"),
            FakeToolCall("current_time", {"timezone": "Europe/Paris"}, id="call_B"),
        ],
        prompt_tokens=42,
        completion_tokens=17,
    )
    history = [
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="What is 2+3?"),
        ChatMessage(
            role="assistant",
            content="Checking.",
            tool_calls=[ToolCall(id="c0", name="calculator", arguments={"expression": "2+3"})],
        ),
        ChatMessage(role="tool", tool_call_id="c0", content='{"result": 5}'),
        ChatMessage(role="user", content="And times seven?"),
    ]
    async with FakeOpenAI(replies=[reply]) as fake:
        events = await collect(request_for(fake, history, tools=[CALCULATOR], temperature=0.2))

    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 6  # one delta per word, as streamed
    assert "".join(texts) == "Let me compute that for you."
    calls = [e.call for e in events if isinstance(e, ToolCallRequest)]
    assert calls == [
        ToolCall(id="call_A", name="calculator", arguments={"expression": "(2 + 3) * 7"}),
        ToolCall(id="call_B", name="current_time", arguments={"timezone": "Europe/Paris"}),
    ]
    assert events[-1] == UsageReport(prompt_tokens=42, completion_tokens=17)
    assert sum(isinstance(e, UsageReport) for e in events) == 1

    (received,) = fake.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer test-key"
    body = received.body
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": "Evaluate arithmetic.",
                "parameters": CALCULATOR.parameters,
            },
        }
    ]
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+3?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c0",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "2+3"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": '{"result": 5}'},
        {"role": "user", "content": "And times seven?"},
    ]


async def test_tool_calls_without_index_are_told_apart_by_id() -> None:
    reply = FakeReply(
        text="",
        omit_tool_call_index=True,
        tool_calls=[
            FakeToolCall("calculator", {"expression": "1 + 1"}, id="c1"),
            FakeToolCall("calculator", {"expression": "2 * 3"}, id="c2"),
        ],
    )
    async with FakeOpenAI(replies=[reply]) as fake:
        events = await collect(request_for(fake, tools=[CALCULATOR]))
    assert [e.call for e in events if isinstance(e, ToolCallRequest)] == [
        ToolCall(id="c1", name="calculator", arguments={"expression": "1 + 1"}),
        ToolCall(id="c2", name="calculator", arguments={"expression": "2 * 3"}),
    ]


async def test_invalid_tool_arguments_reach_the_tool_as_raw_and_are_rejected_clearly() -> None:
    reply = FakeReply(
        text="", tool_calls=[FakeToolCall("calculator", '{"expression": "1 +', id="c1")]
    )
    async with FakeOpenAI(replies=[reply]) as fake:
        events = await collect(request_for(fake, tools=[CALCULATOR]))
    (call,) = [e.call for e in events if isinstance(e, ToolCallRequest)]
    assert call.arguments == {"_raw": '{"expression": "1 +'}
    with pytest.raises(ToolError, match="not a JSON object"):
        await get_tool("calculator").run(call.arguments, ctx=None)  # type: ignore[arg-type]


async def test_local_server_needs_no_key_and_usage_is_estimated_when_not_reported() -> None:
    async with FakeOpenAI(api_key=None, replies=[FakeReply(text="one two three")]) as fake:
        request = request_for(fake, options={"includeUsage": False}, max_tokens=64)
        request.api_key = None
        events = await collect(request)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    usage = events[-1]
    assert isinstance(usage, UsageReport) and usage.estimated
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0
    body = fake.requests[0].body
    assert "stream_options" not in body
    assert body["max_tokens"] == 64  # compatible servers get the classic parameter
    assert fake.requests[0].headers["authorization"] == "Bearer not-needed"


async def test_public_openai_without_a_key_fails_fast_as_auth() -> None:
    request = ModelRequest(
        provider="openai", model="gpt-4o", messages=[ChatMessage(role="user", content="hi")]
    )
    with pytest.raises(ProviderError) as info:
        await collect(request)
    assert info.value.code == "auth" and not info.value.retryable


@pytest.mark.parametrize(
    ("reply", "code", "retryable"),
    [
        (FakeReply(error_status=401, error_message="Incorrect API key"), "auth", False),
        (FakeReply(error_status=429, error_message="Slow down", retry_after=7), "rate_limit", True),
        (FakeReply(error_status=500, error_message="boom"), "server_error", True),
        (FakeReply(error_status=400, error_message="bad messages"), "bad_request", False),
        (FakeReply(error_status=404, error_message="no such model"), "not_found", False),
        (
            FakeReply(text="a b c d e", fail_after_tokens=2, error_message="overloaded"),
            "stream_error",
            True,
        ),
    ],
)
async def test_errors_map_to_provider_errors(reply: FakeReply, code: str, retryable: bool) -> None:
    async with FakeOpenAI(replies=[reply]) as fake:
        with pytest.raises(ProviderError) as info:
            await collect(request_for(fake))
    assert (info.value.code, info.value.retryable) == (code, retryable)
    assert reply.error_message in info.value.message
    if reply.retry_after is not None:
        assert info.value.retry_after_s == reply.retry_after


async def test_wrong_key_is_an_auth_error() -> None:
    async with FakeOpenAI(api_key="the-right-key") as fake:
        request = request_for(fake)
        request.api_key = "a-wrong-key"
        with pytest.raises(ProviderError) as info:
            await collect(request)
    assert info.value.code == "auth" and info.value.status == 401


async def test_unreachable_server_is_a_retryable_connection_error() -> None:
    request = ModelRequest(
        provider="openai",
        model="m",
        messages=[ChatMessage(role="user", content="hi")],
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        api_key="k",
    )
    with pytest.raises(ProviderError) as info:
        await collect(request)
    assert info.value.code in ("connection", "timeout") and info.value.retryable


async def test_a_connection_cut_mid_stream_is_a_retryable_connection_error() -> None:
    async with FakeOpenAI(
        replies=[FakeReply(text="one two three four", drop_after_tokens=2)]
    ) as fake:
        stream = get_provider("openai").stream(request_for(fake))
        texts = []
        with pytest.raises(ProviderError) as info:
            async for event in stream:
                texts.append(event.text)
    assert texts == ["one ", "two "]
    assert (info.value.code, info.value.retryable) == ("connection", True)


async def test_closing_the_iterator_mid_stream_aborts_the_http_stream() -> None:
    words = " ".join(f"w{i}" for i in range(200))
    async with FakeOpenAI(replies=[FakeReply(text=words, token_delay_ms=20)]) as fake:
        stream = get_provider("openai").stream(request_for(fake))
        received = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        await asyncio.wait_for(fake.disconnected.wait(), timeout=10)
    assert [e.text for e in received] == ["w0 ", "w1 ", "w2 "]
    assert fake.disconnects == 1 and fake.streams_completed == 0
    assert fake.chunks_sent < 100  # the server stopped well before the end of the reply


async def test_cancelling_the_consumer_task_aborts_the_http_stream() -> None:
    words = " ".join(f"w{i}" for i in range(200))
    got_first = asyncio.Event()

    async def consume(request: ModelRequest) -> None:
        async with contextlib.aclosing(get_provider("openai").stream(request)) as events:
            async for _ in events:
                got_first.set()

    async with FakeOpenAI(replies=[FakeReply(text=words, token_delay_ms=20)]) as fake:
        task = asyncio.create_task(consume(request_for(fake)))
        await asyncio.wait_for(got_first.wait(), timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(fake.disconnected.wait(), timeout=10)
    assert fake.streams_completed == 0
