"""What a model call costs, in USD, from per-million-token prices.

Prices are list prices (standard tier, no batch/caching discounts) in USD per million tokens.
Dated and suffixed model names match their family by the longest prefix
(`gpt-4o-mini-2024-07-18` -> `gpt-4o-mini`, `claude-3-5-sonnet-latest` -> `claude-3-5-sonnet`);
a `vendor/` prefix (`openai/gpt-4o`) is ignored. Unknown models (e.g. local Ollama models) and the
scripted provider cost 0 unless the agent sets its own `pricing` override.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Pricing(BaseModel):
    """USD per million tokens; on the wire `{"inputPerMillion": 2.5, "outputPerMillion": 10}`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    input_per_million: float = Field(ge=0, le=10_000)
    output_per_million: float = Field(ge=0, le=10_000)


def _p(input_per_million: float, output_per_million: float) -> Pricing:
    return Pricing(input_per_million=input_per_million, output_per_million=output_per_million)


PRICES: dict[str, Pricing] = {
    # OpenAI
    "gpt-5": _p(1.25, 10.00),
    "gpt-5-mini": _p(0.25, 2.00),
    "gpt-5-nano": _p(0.05, 0.40),
    "gpt-4.1": _p(2.00, 8.00),
    "gpt-4.1-mini": _p(0.40, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.40),
    "gpt-4o": _p(2.50, 10.00),
    "gpt-4o-mini": _p(0.15, 0.60),
    "gpt-4-turbo": _p(10.00, 30.00),
    "gpt-4": _p(30.00, 60.00),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "o1": _p(15.00, 60.00),
    "o1-mini": _p(1.10, 4.40),
    "o3": _p(2.00, 8.00),
    "o3-mini": _p(1.10, 4.40),
    "o4-mini": _p(1.10, 4.40),
    # Anthropic
    "claude-opus-4-5": _p(5.00, 25.00),
    "claude-opus-4-1": _p(15.00, 75.00),
    "claude-opus-4": _p(15.00, 75.00),
    "claude-sonnet-4-5": _p(3.00, 15.00),
    "claude-sonnet-4": _p(3.00, 15.00),
    "claude-haiku-4-5": _p(1.00, 5.00),
    "claude-3-7-sonnet": _p(3.00, 15.00),
    "claude-3-5-sonnet": _p(3.00, 15.00),
    "claude-3-5-haiku": _p(0.80, 4.00),
    "claude-3-opus": _p(15.00, 75.00),
    "claude-3-sonnet": _p(3.00, 15.00),
    "claude-3-haiku": _p(0.25, 1.25),
    # The scripted provider is not a model; it is free unless an agent overrides its pricing.
    "scripted": _p(0.0, 0.0),
}
# Longest first, so "gpt-4o-mini-…" is priced as gpt-4o-mini, not gpt-4o.
_BY_LENGTH = sorted(PRICES, key=len, reverse=True)


def price_for(model: str) -> Pricing | None:
    """The list price of `model` (longest matching family prefix), or None when unknown."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for family in _BY_LENGTH:
        if name == family or name.startswith(family + "-") or name.startswith(family + "@"):
            return PRICES[family]
    return None


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    override: Pricing | None = None,
    *,
    provider: str | None = None,
) -> float:
    """USD for one call (or a run's totals), rounded to 8 decimals; unknown models cost 0.

    Pass `provider` so a scripted agent is free whatever its `model` string says.
    """
    if override is None and provider == "scripted":
        return 0.0
    pricing = override or price_for(model)
    if pricing is None:
        return 0.0
    cost = (
        max(prompt_tokens, 0) * pricing.input_per_million
        + max(completion_tokens, 0) * pricing.output_per_million
    ) / 1_000_000
    return round(cost, 8)
