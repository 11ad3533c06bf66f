"""Model providers behind one small interface (see `base.py` and docs/agents-providers.md).

provider = get_provider(agent.provider)           # "openai" | "anthropic" | "scripted"
async with contextlib.aclosing(provider.stream(request)) as events:
    async for event in events: ...                 # TextDelta | ToolCallRequest | UsageReport
"""

from __future__ import annotations

import os
from typing import Any

from deeployd.agents.providers.anthropic import AnthropicProvider
from deeployd.agents.providers.base import (
    ChatMessage,
    ModelProvider,
    ModelRequest,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolCallRequest,
    ToolSpec,
    UsageReport,
)
from deeployd.agents.providers.openai import OpenAIProvider
from deeployd.agents.providers.scripted import (
    DEMO_APPROVAL_REQUIRED,
    DEMO_SCRIPT,
    DEMO_TOOLS,
    ScriptedProvider,
)

_PROVIDERS: dict[str, ModelProvider] = {
    p.name: p for p in (OpenAIProvider(), AnthropicProvider(), ScriptedProvider())
}

# Where each provider takes the platform's API key from when the agent names none.
_ENV_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_SETTINGS_KEYS = {"openai": "openai_api_key", "anthropic": "anthropic_api_key"}
# The platform's own endpoints: the only URLs a platform key is ever sent to.
PLATFORM_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


def get_provider(name: str) -> ModelProvider:
    """The provider registered under `name`; unknown names raise KeyError."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise KeyError(
            f"unknown provider {name!r}; known: {', '.join(sorted(_PROVIDERS))}"
        ) from None


def register_provider(provider: ModelProvider) -> None:
    """Add (or replace) a provider, e.g. a custom backend registered at worker start-up."""
    _PROVIDERS[provider.name] = provider


def provider_names() -> list[str]:
    return sorted(_PROVIDERS)


def has_platform_key(provider: str) -> bool:
    """Providers the platform may hold a key for (OPENAI_API_KEY / ANTHROPIC_API_KEY)."""
    return provider in _ENV_KEYS


def is_platform_endpoint(provider: str, base_url: str | None) -> bool:
    """True when `base_url` is the provider's own public endpoint (unset, or spelled out)."""
    if not base_url:
        return True
    default = PLATFORM_BASE_URLS.get(provider)
    return default is not None and base_url.rstrip("/") == default


def default_api_key(provider: str, settings: Any = None, base_url: str | None = None) -> str | None:
    """The platform's key for an agent that configures none: `settings.openai_api_key` /
    `settings.anthropic_api_key` (OPENAI_API_KEY / ANTHROPIC_API_KEY), the environment
    without settings. Only for the platform's own endpoint: never for a `base_url` a tenant
    chose (None then)."""
    variable = _ENV_KEYS.get(provider)
    if variable is None or not is_platform_endpoint(provider, base_url):
        return None
    if settings is not None and hasattr(settings, _SETTINGS_KEYS[provider]):
        return getattr(settings, _SETTINGS_KEYS[provider]) or None
    return os.environ.get(variable) or None


__all__ = [
    "DEMO_APPROVAL_REQUIRED",
    "DEMO_SCRIPT",
    "DEMO_TOOLS",
    "PLATFORM_BASE_URLS",
    "AnthropicProvider",
    "ChatMessage",
    "ModelProvider",
    "ModelRequest",
    "OpenAIProvider",
    "ProviderError",
    "ProviderEvent",
    "ScriptedProvider",
    "TextDelta",
    "ToolCall",
    "ToolCallRequest",
    "ToolSpec",
    "UsageReport",
    "default_api_key",
    "get_provider",
    "has_platform_key",
    "is_platform_endpoint",
    "provider_names",
    "register_provider",
]
