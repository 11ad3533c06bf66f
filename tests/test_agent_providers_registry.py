"""Providers are one plugin registry: a new provider is one module with a `@registered` class;
lookup, the list of names and the platform-key rules all derive from it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from deeployd.agents.providers import (
    PLATFORM_BASE_URLS,
    PROVIDERS,
    ModelRequest,
    PlatformKey,
    ProviderEvent,
    TextDelta,
    default_api_key,
    get_provider,
    has_platform_key,
    is_platform_endpoint,
    provider_names,
    registered,
)
from deeployd.errors import Invalid


@pytest.fixture
def echo_registered() -> Iterator[None]:
    @registered
    class EchoProvider:
        name = "echo-test"
        platform_key = PlatformKey("ECHO_TEST_KEY", "echo_test_key", "https://echo.invalid/v1")

        async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
            yield TextDelta(text=request.messages[-1].content or "")

    try:
        yield
    finally:
        PROVIDERS._entries.pop("echo-test", None)


def test_the_built_in_providers_are_registered_by_importing_the_package() -> None:
    assert provider_names() == ["anthropic", "openai", "scripted"]
    assert PLATFORM_BASE_URLS == {
        "openai": "https://api.openai.com/v1",
        "anthropic": "https://api.anthropic.com",
    }
    assert not has_platform_key("scripted")


def test_an_unknown_provider_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="anthropic, openai, scripted"):
        get_provider("gemini")
    with pytest.raises(Invalid) as refused:
        PROVIDERS.get("gemini", ("body", "provider"))
    assert refused.value.errors[0].loc == ("body", "provider")
    assert "openai" in refused.value.errors[0].msg


def test_a_registered_provider_is_found_and_gets_its_platform_key_rules(
    echo_registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "echo-test" in provider_names()
    assert get_provider("echo-test").name == "echo-test"
    assert has_platform_key("echo-test")
    assert is_platform_endpoint("echo-test", "https://echo.invalid/v1/")
    assert not is_platform_endpoint("echo-test", "https://elsewhere.invalid/v1")
    monkeypatch.setenv("ECHO_TEST_KEY", "ek-1")
    assert default_api_key("echo-test") == "ek-1"
    assert default_api_key("echo-test", base_url="https://elsewhere.invalid/v1") is None


def test_two_providers_may_not_share_a_name() -> None:
    with pytest.raises(RuntimeError, match="two providers"):

        @registered
        class Impostor:
            name = "openai"

            async def stream(self, request: ModelRequest) -> AsyncIterator[ProviderEvent]:
                yield TextDelta(text="")

    assert type(get_provider("openai")).__name__ == "OpenAIProvider"
