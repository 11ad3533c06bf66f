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

# Where each provider takes its API key from when the agent names none.
_ENV_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


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


def default_api_key(provider: str, settings: Any = None) -> str | None:
    """The key to use when the agent configures none: OPENAI_API_KEY / ANTHROPIC_API_KEY.

    `settings` is accepted for symmetry with the rest of the code base (a future per-deployment
    key would live there); today only the environment is consulted.
    """
    variable = _ENV_KEYS.get(provider)
    if variable is None:
        return None
    return os.environ.get(variable) or None


__all__ = [
    "DEMO_APPROVAL_REQUIRED",
    "DEMO_SCRIPT",
    "DEMO_TOOLS",
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
    "provider_names",
    "register_provider",
]
