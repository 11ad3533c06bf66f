"""Model providers behind one small interface (see `base.py` and docs/agents-providers.md).

provider = get_provider(agent.provider)           # any name in PROVIDERS (see registry.py)
async with contextlib.aclosing(provider.stream(request)) as events:
    async for event in events: ...                 # TextDelta | ToolCallRequest | UsageReport
"""

from __future__ import annotations

import os
from typing import Any

# The built-in providers register themselves on import; a new one is a module with a
# `@registered` class, plus its name on this line.
from deeployd.agents.providers import anthropic, openai, scripted  # noqa: F401
from deeployd.agents.providers.anthropic import AnthropicProvider
from deeployd.agents.providers.base import (
    PROVIDERS,
    ChatMessage,
    ModelProvider,
    ModelRequest,
    PlatformKey,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolCallRequest,
    ToolSpec,
    UsageReport,
    registered,
)
from deeployd.agents.providers.openai import OpenAIProvider
from deeployd.agents.providers.scripted import (
    DEMO_APPROVAL_REQUIRED,
    DEMO_SCRIPT,
    DEMO_TOOLS,
    ScriptedProvider,
)


def get_provider(name: str) -> ModelProvider:
    """The provider registered under `name`; unknown names raise KeyError."""
    provider = PROVIDERS.find(name)
    if provider is None:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(provider_names())}")
    return provider


def register_provider(provider: ModelProvider) -> None:
    """Add a provider, e.g. a custom backend registered at worker start-up."""
    PROVIDERS.add(provider.name, provider)


def provider_names() -> list[str]:
    return sorted(PROVIDERS.names())


def _platform_key(provider: str) -> PlatformKey | None:
    found = PROVIDERS.find(provider)
    key = getattr(found, "platform_key", None)
    return key if isinstance(key, PlatformKey) else None


# The platform's own endpoints: the only URLs a platform key is ever sent to.
PLATFORM_BASE_URLS = {
    name: key.base_url for name in PROVIDERS if (key := _platform_key(name)) is not None
}


def has_platform_key(provider: str) -> bool:
    """Providers the platform may hold a key for (OPENAI_API_KEY / ANTHROPIC_API_KEY)."""
    return _platform_key(provider) is not None


def is_platform_endpoint(provider: str, base_url: str | None) -> bool:
    """True when `base_url` is the provider's own public endpoint (unset, or spelled out)."""
    if not base_url:
        return True
    key = _platform_key(provider)
    return key is not None and base_url.rstrip("/") == key.base_url


def default_api_key(provider: str, settings: Any = None, base_url: str | None = None) -> str | None:
    """The platform's key for an agent that configures none: `settings.openai_api_key` /
    `settings.anthropic_api_key` (OPENAI_API_KEY / ANTHROPIC_API_KEY), the environment
    without settings. Only for the platform's own endpoint: never for a `base_url` a tenant
    chose (None then)."""
    key = _platform_key(provider)
    if key is None or not is_platform_endpoint(provider, base_url):
        return None
    if settings is not None and hasattr(settings, key.setting):
        return getattr(settings, key.setting) or None
    return os.environ.get(key.env) or None


__all__ = [
    "DEMO_APPROVAL_REQUIRED",
    "DEMO_SCRIPT",
    "DEMO_TOOLS",
    "PLATFORM_BASE_URLS",
    "PROVIDERS",
    "AnthropicProvider",
    "ChatMessage",
    "ModelProvider",
    "ModelRequest",
    "OpenAIProvider",
    "PlatformKey",
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
    "registered",
]
