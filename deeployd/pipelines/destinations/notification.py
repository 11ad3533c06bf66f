"""The `notification` destination: a human-readable message per item, to Slack or a generic webhook.

Templates are plain text with `{{field}}` / `{{nested.field}}` placeholders — no expressions, no
code: a placeholder is a dotted path looked up in the item; a missing field renders as the empty
string, strings as themselves, numbers/booleans with `str`, objects and lists as compact JSON.

Slack treats `&`, `<` and `>` as control characters (`<url|label>` links, `<@U123>` mentions), so
VALUES substituted into a Slack message are escaped to `&amp;`, `&lt;`, `&gt;` — an item can never
inject a mention or a link — while the template's own text is sent as written (authors may use
links and mentions on purpose). The generic webhook channel sends text unescaped.

Bounded output: at most `maxMessages` (default 20, max 100) requests per delivered batch. When a
batch holds more items than that, lines are packed several per message (newline separated), and
no message exceeds Slack's 40,000-character limit (longer lines are truncated with an ellipsis).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from deeployd.netguard import UnsafeURLError, check_outbound_url
from deeployd.pipelines.destinations.analytics import lookup, retry_after
from deeployd.pipelines.destinations.base import (
    ConfigError,
    ConfiguredDestination,
    Delivery,
    DeliveryContext,
    DeliveryError,
    check_target_url,
    choice,
    refuses_content,
    register_destination,
    reject,
)

CHANNELS = ("slack", "webhook")
MAX_TEXT = 40_000  # Slack truncates longer messages
DEFAULT_MAX_MESSAGES = 20
REQUEST_TIMEOUT_S = 15.0
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*)\s*\}\}")
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class NotificationConfig(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    channel: Literal["slack", "webhook"]
    webhook: str | None = None  # slack incoming-webhook URL, usually ${secrets.SLACK_WEBHOOK}
    url: str | None = None  # generic webhook
    template: str | None = Field(default=None, max_length=10_000)
    headers: dict[str, str] | None = None  # generic webhook only
    max_messages: int = Field(default=DEFAULT_MAX_MESSAGES, ge=1, le=100)

    @model_validator(mode="after")
    def _target(self) -> NotificationConfig:
        if self.channel == "slack" and not self.webhook:
            raise ValueError("'webhook' (a Slack incoming-webhook URL) is required for slack")
        if self.channel == "webhook" and not self.url:
            raise ValueError("'url' is required for the webhook channel")
        return self

    @property
    def target(self) -> str:
        return (self.webhook if self.channel == "slack" else self.url) or ""


def parse_config(config: dict[str, Any]) -> NotificationConfig:
    channel = choice(config, "channel", CHANNELS, "channel")
    try:
        parsed = NotificationConfig.model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        if not loc:  # the model validator: name the field that is missing
            loc = ("webhook",) if channel == "slack" else ("url",)
        raise ConfigError(("config", *loc), error["msg"].removeprefix("Value error, ")) from None
    check_target_url(parsed.target, ("config", "webhook" if channel == "slack" else "url"))
    return parsed


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def render(template: str, item: Any, *, slack: bool) -> str:
    """Fill `{{path}}` placeholders from the item; values are escaped for Slack when `slack`."""
    value = item if isinstance(item, dict) else {"value": item}

    def replace(match: re.Match[str]) -> str:
        text = _text(lookup(value, match.group(1)))
        return text.translate(_SLACK_ESCAPES) if slack else text

    return _PLACEHOLDER.sub(replace, template)


def default_line(item: Any, *, slack: bool) -> str:
    text = _text(item)
    return text.translate(_SLACK_ESCAPES) if slack else text


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pack(lines: list[str], max_messages: int) -> list[tuple[int, int]]:
    """Group consecutive lines into at most `max_messages` messages of <= MAX_TEXT characters.

    Returns (start, end) index ranges. One line per message when they fit in the budget;
    otherwise ceil(n / max_messages) lines per message (fewer if a message would be too long).
    """
    if len(lines) <= max_messages:
        return [(i, i + 1) for i in range(len(lines))]
    per_message = math.ceil(len(lines) / max_messages)
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < len(lines):
        end, size = start, 0
        while end < len(lines) and end - start < per_message:
            extra = len(lines[end]) + (1 if end > start else 0)
            if end > start and size + extra > MAX_TEXT:
                break
            size += extra
            end += 1
        ranges.append((start, end))
        start = end
    return ranges


class NotificationDestination(ConfiguredDestination[NotificationConfig]):
    type = "notification"

    def parse(self, config: dict[str, Any]) -> NotificationConfig:
        return parse_config(config)

    async def send(self, ctx: DeliveryContext, cfg: NotificationConfig, delivery: Delivery) -> None:
        items = delivery.items
        slack = cfg.channel == "slack"
        lines = [
            _clip(
                render(cfg.template, i.value, slack=slack)
                if cfg.template
                else default_line(i.value, slack=slack)
            )
            for i in items
        ]
        try:
            await check_outbound_url(cfg.target, allow_private=ctx.settings.allow_private_urls)
        except UnsafeURLError as exc:
            raise DeliveryError(f"notification: {exc}", retryable=False) from None
        for start, end in pack(lines, cfg.max_messages):
            await self._send(ctx, cfg, delivery, items, lines, start, end)

    async def _send(
        self,
        ctx: DeliveryContext,
        cfg: NotificationConfig,
        delivery: Delivery,
        items: list[Any],
        lines: list[str],
        start: int,
        end: int,
    ) -> None:
        """Post items[start:end] as one message; when the receiver refuses its content (a final
        4xx such as Slack's 400 `no_text`), halve the message until the refused item stands
        alone: it goes to dead letters, the other items are posted."""
        slack = cfg.channel == "slack"
        text = _clip("\n".join(lines[start:end]))
        if slack:
            body: dict[str, Any] = {"text": text}
            headers = {"Content-Type": "application/json"}
        else:
            group = [i.value for i in items[start:end]]
            body = (
                {"text": text, "item": group[0]}
                if len(group) == 1
                else {
                    "text": text,
                    "items": group,
                }
            )
            headers = {"Content-Type": "application/json", **(cfg.headers or {})}
        try:
            await self._post(ctx, cfg, body, headers)
        except DeliveryError as exc:
            if not exc.content_refused:
                raise
            if end - start == 1:
                reject(ctx, delivery, items[start], str(exc))
                return
            middle = (start + end) // 2
            await self._send(ctx, cfg, delivery, items, lines, start, middle)
            await self._send(ctx, cfg, delivery, items, lines, middle, end)
            return
        if ctx.progress is not None:
            for item in items[start:end]:
                ctx.progress(item)

    async def _post(
        self,
        ctx: DeliveryContext,
        cfg: NotificationConfig,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        # The Slack webhook URL is itself the credential: it never appears in an error message.
        try:
            response = await ctx.http.post(
                cfg.target,
                content=json.dumps(body, separators=(",", ":"), default=str),
                headers=headers,
                timeout=REQUEST_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"{cfg.channel}: {type(exc).__name__} while posting the notification",
                retryable=True,
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = response.text[:200]
        message = f"{cfg.channel} answered HTTP {status}: {detail}"
        if status in (408, 429) or status >= 500:
            raise DeliveryError(message, retryable=True, retry_after_s=retry_after(response))
        raise DeliveryError(message, retryable=False, content_refused=refuses_content(status))


register_destination(NotificationDestination())
