"""The `webhook` destination: one HTTP request per output item, in offset order.

Each request carries `webhook-id` = `<pipelineId>-<firstOffset>-<lastOffset>`, stable across
retries and replays, so a receiver can deduplicate; with `signingSecret` it also carries
Standard Webhooks signature headers. 2xx is success; 408, 429, 5xx and network errors are
retried per the pipeline's `retryPolicy` (honouring `Retry-After`); a 4xx about the endpoint or
the credentials (401, 403, 404, ...) fails the batch; any other 4xx (400, 413, 422, ...) refuses
that item alone: it goes to dead letters with the answer, the rest of the batch is delivered.
"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from deeployd import netguard
from deeployd.pipelines.destinations.base import (
    ConfigError,
    Delivery,
    DeliveryContext,
    DeliveryError,
    refuses_content,
    register_destination,
    reject,
)
from deeployd.pipelines.signing import signed_headers
from deeployd.secretstore import SECRET_REF

METHODS = ("POST", "PUT", "PATCH")
DEFAULT_RETRY = {"maxRetries": 3, "backoffMs": 1000}
_KEYS = {"url", "method", "headers", "retryPolicy", "signingSecret", "timeoutMs"}


def retry_policy(config: dict[str, Any]) -> dict[str, int]:
    """`{maxRetries, backoffMs}` with defaults; shared by every destination's config."""
    policy = {**DEFAULT_RETRY, **(config.get("retryPolicy") or {})}
    return {"maxRetries": int(policy["maxRetries"]), "backoffMs": int(policy["backoffMs"])}


def validate_retry_policy(config: dict[str, Any]) -> None:
    policy = config.get("retryPolicy")
    if policy is None:
        return
    if not isinstance(policy, dict):
        raise ConfigError(("config", "retryPolicy"), "must be an object")
    for key in policy:
        if key not in DEFAULT_RETRY:
            raise ConfigError(("config", "retryPolicy", key), "unknown field")
    bounds = {"maxRetries": (0, 20), "backoffMs": (1, 600_000)}
    for key, (low, high) in bounds.items():
        value = policy.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ConfigError(
                ("config", "retryPolicy", key), f"must be an integer from {low} to {high}"
            )


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class WebhookDestination:
    type = "webhook"

    def validate(self, config: dict[str, Any]) -> None:
        for key in config:
            if key not in _KEYS:
                raise ConfigError(("config", key), "unknown field")
        url = config.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(("config", "url"), "is required")
        if not SECRET_REF.search(url):
            try:
                netguard.check_url_syntax(url)
            except netguard.UnsafeURLError as exc:
                raise ConfigError(("config", "url"), str(exc)) from None
        method = config.get("method", "POST")
        if method not in METHODS:
            raise ConfigError(("config", "method"), f"must be one of {', '.join(METHODS)}")
        headers = config.get("headers", {})
        if not isinstance(headers, dict):
            raise ConfigError(("config", "headers"), "must be an object of strings")
        for name, value in headers.items():
            if not isinstance(value, str):
                raise ConfigError(("config", "headers", name), "must be a string")
        secret = config.get("signingSecret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ConfigError(("config", "signingSecret"), "must be a non-empty string")
        timeout = config.get("timeoutMs", 10_000)
        if not isinstance(timeout, int) or not 100 <= timeout <= 120_000:
            raise ConfigError(("config", "timeoutMs"), "must be an integer from 100 to 120000")
        validate_retry_policy(config)

    async def deliver(self, ctx: DeliveryContext, delivery: Delivery) -> None:
        config = ctx.config
        url = config["url"]
        try:
            await netguard.check_outbound_url(url, allow_private=ctx.settings.allow_private_urls)
        except netguard.UnsafeURLError as exc:
            raise DeliveryError(f"refused URL: {exc}", retryable=False) from None
        method = config.get("method", "POST")
        base_headers = {"content-type": "application/json", **config.get("headers", {})}
        secret = config.get("signingSecret")
        timeout = config.get("timeoutMs", 10_000) / 1000
        for item in delivery.items:
            body = json.dumps(item.value, separators=(",", ":"), default=str).encode()
            msg_id = f"{ctx.pipeline_id}-{item.first_offset}-{item.last_offset}"
            headers = {**base_headers, "webhook-id": msg_id}
            if secret:
                headers.update(signed_headers(secret, msg_id, body))
            try:
                response = await ctx.http.request(
                    method, url, content=body, headers=headers, timeout=timeout
                )
            except httpx.HTTPError as exc:
                raise DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
            status = response.status_code
            if status >= 300 and refuses_content(status):
                # One request per item: the receiver refused this item, not the others.
                reject(ctx, delivery, item, f"{method} {url} answered HTTP {status}")
                continue
            if status >= 300:
                retryable = status in (408, 429) or status >= 500
                raise DeliveryError(
                    f"{method} {url} answered HTTP {status}",
                    retryable=retryable,
                    retry_after_s=parse_retry_after(response.headers.get("retry-after")),
                )
            if ctx.progress is not None:
                ctx.progress(item)


register_destination(WebhookDestination())
