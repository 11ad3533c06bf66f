"""The `analytics` destination: product-analytics ingestion APIs (Segment, Mixpanel, Amplitude, custom).

Every output item becomes one analytics event. Its dedup id (Segment `messageId`, Mixpanel
`$insert_id`, Amplitude `insert_id`) is a UUID derived from the pipeline id, the item's offsets and
its content, so when the pipeline redelivers a batch (retry, worker crash, replay) the service
drops the copies: delivery is effectively exactly once on the provider's side.

Wire formats and limits (docs/pipeline-sources-and-destinations.md has the details):
- segment:   POST {baseUrl}/v1/batch, Basic auth `writeKey:`, `{"batch": [track...]}`,
             <= 32 KB per message, <= 500 KB per request.
- mixpanel:  POST {baseUrl}/import?strict=1, Basic auth `projectToken:` (or a service account plus
             `project_id`), JSON array of <= 2000 events.
- amplitude: POST {baseUrl}/2/httpapi, `{"api_key", "events", "options"}`, <= 2000 events, 413 ->
             split and resend, 429 -> retry after 30 s, 400 -> drop the events it names, resend rest.
- custom:    POST {url}, JSON array of normalised events, `Idempotency-Key` header.

Per event: an event over the provider's size limit, an event Mixpanel or Amplitude names as
invalid, or (Segment, custom) the one event a request refused with a final 4xx is isolated by
halving the request: it goes to dead letters with the provider's answer, the rest is delivered.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from deeployd.netguard import UnsafeURLError, check_outbound_url
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

PROVIDERS = ("segment", "mixpanel", "amplitude", "custom")
DEFAULT_BASE_URLS = {
    "segment": "https://api.segment.io",
    "mixpanel": "https://api.mixpanel.com",
    "amplitude": "https://api2.amplitude.com",
}
SEGMENT_MAX_MESSAGE_BYTES = 32 * 1024
SEGMENT_MAX_BATCH_BYTES = 500 * 1024
MAX_EVENTS_PER_REQUEST = {"segment": 2000, "mixpanel": 2000, "amplitude": 2000, "custom": 500}
# Mixpanel and Amplitude refuse bodies above ~1 MB (1 MB compressed / 10 MB raw for Mixpanel);
# staying under 1 MB raw keeps us clear of both without compression.
MAX_BODY_BYTES = 1024 * 1024 - 16 * 1024
AMPLITUDE_THROTTLE_S = 30.0  # Amplitude's docs: after a 429, wait 30 seconds before resending
REQUEST_TIMEOUT_S = 30.0
DEFAULT_USER_FIELDS = ("userId", "user_id", "distinctId", "distinct_id", "agentId", "agent_id")
DEFAULT_EVENT_FIELDS = ("event_type", "event", "eventType")
DEFAULT_TIME_FIELDS = ("timestamp", "time", "ts")
_ID_NAMESPACE = uuid.UUID("6f1c3a52-6d4e-4f59-9a8e-2b0d6c8e7a11")


class AnalyticsConfig(BaseModel):
    """The destination's `config` (camelCase on the wire)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    provider: Literal["segment", "mixpanel", "amplitude", "custom"]
    write_key: str | None = None  # segment
    project_token: str | None = None  # mixpanel
    project_id: str | None = None  # mixpanel, with a service account
    service_account_username: str | None = None
    service_account_secret: str | None = None
    api_key: str | None = None  # amplitude
    url: str | None = None  # custom
    headers: dict[str, str] | None = None  # custom
    base_url: str | None = None
    event_name: str | None = None
    event_field: str | None = None
    distinct_id_field: str | None = None
    user_id_field: str | None = None
    time_field: str | None = None

    @model_validator(mode="after")
    def _credentials(self) -> AnalyticsConfig:
        required = {"segment": "write_key", "amplitude": "api_key", "custom": "url"}
        name = required.get(self.provider)
        if name is not None and not getattr(self, name):
            raise _Missing(to_camel(name), f"'{to_camel(name)}' is required for {self.provider}")
        if self.provider == "mixpanel" and not self.project_token:
            account = self.service_account_username and self.service_account_secret
            if not (account and self.project_id):
                raise _Missing(
                    "projectToken",
                    "'projectToken' is required for mixpanel (or serviceAccountUsername, "
                    "serviceAccountSecret and projectId)",
                )
        return self


class _Missing(ValueError):
    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field
        self.msg = msg


def parse_config(config: dict[str, Any]) -> AnalyticsConfig:
    """Validate a destination config; ConfigError locs are relative to the destination body."""
    choice(config, "provider", PROVIDERS, "provider")
    try:
        parsed = AnalyticsConfig.model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _Missing):
            raise ConfigError(("config", cause.field), cause.msg) from None
        raise ConfigError(("config", *error["loc"]), error["msg"]) from None
    for name in ("url", "base_url"):
        check_target_url(getattr(parsed, name), ("config", to_camel(name)))
    return parsed


# ---------------------------------------------------------------------------------------------
# From output items to provider-neutral events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyticsEvent:
    name: str
    user_id: str | None
    anonymous_id: str
    time_ms: int
    insert_id: str
    properties: dict[str, Any]
    first_offset: int
    last_offset: int


def lookup(value: dict[str, Any], path: str) -> Any:
    """`a.b.c` inside nested dicts; None when any step is missing."""
    current: Any = value
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def dedup_id(pipeline_id: str, first: int, last: int, value: Any, occurrence: int) -> str:
    """A stable UUID for one output: same pipeline, offsets and content -> same id on redelivery.

    Offsets alone are not enough: one window over offsets 10..20 may emit a row per group, so the
    content (and, for identical rows, their position among equals) is part of the identity.
    Mixpanel wants <= 36 characters of [A-Za-z0-9-]; a UUID is exactly that.
    """
    digest = hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()[:16]
    return str(uuid.uuid5(_ID_NAMESPACE, f"{pipeline_id}:{first}:{last}:{digest}:{occurrence}"))


def _to_ms(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        # Epoch seconds are 10 digits until 2286; anything smaller than 1e11 is seconds.
        return int(raw * 1000) if raw < 1e11 else int(raw)
    if isinstance(raw, str) and raw:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    return None


def event_name(cfg: AnalyticsConfig, value: dict[str, Any]) -> tuple[str | None, str | None]:
    """The event name for an item and the field it came from (None, None: use the pipeline name)."""
    if cfg.event_name:
        return cfg.event_name, None
    for candidate in (cfg.event_field,) if cfg.event_field else DEFAULT_EVENT_FIELDS:
        found = lookup(value, candidate)
        if found not in (None, ""):
            return str(found), candidate
    return None, None


def to_events(
    cfg: AnalyticsConfig, pipeline_id: str, pipeline_name: str, items: list[Any]
) -> list[AnalyticsEvent]:
    events: list[AnalyticsEvent] = []
    seen: dict[tuple[int, int, str], int] = {}
    for item in items:
        value = item.value if isinstance(item.value, dict) else {"value": item.value}
        properties = dict(value)
        name, field = event_name(cfg, value)
        if field is not None and "." not in field:
            properties.pop(field, None)
        name = name or pipeline_name
        user_field = cfg.distinct_id_field or cfg.user_id_field
        user = None
        for candidate in (user_field,) if user_field else DEFAULT_USER_FIELDS:
            found = lookup(value, candidate)
            if found not in (None, ""):
                user = str(found)
                break
        time_ms = None
        for candidate in (cfg.time_field,) if cfg.time_field else DEFAULT_TIME_FIELDS:
            time_ms = _to_ms(lookup(value, candidate))
            if time_ms is not None:
                break
        base = dedup_id(pipeline_id, item.first_offset, item.last_offset, value, 0)
        occurrence = seen.get((item.first_offset, item.last_offset, base), 0)
        seen[(item.first_offset, item.last_offset, base)] = occurrence + 1
        events.append(
            AnalyticsEvent(
                name=name,
                user_id=user,
                anonymous_id=f"deeployd-{pipeline_id}",
                time_ms=time_ms if time_ms is not None else int(item.ingest_ms),
                insert_id=base
                if occurrence == 0
                else dedup_id(pipeline_id, item.first_offset, item.last_offset, value, occurrence),
                properties=properties,
                first_offset=item.first_offset,
                last_offset=item.last_offset,
            )
        )
    return events


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def encode_segment(event: AnalyticsEvent) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "track",
        "event": event.name,
        "properties": event.properties,
        "messageId": event.insert_id,
        "timestamp": _iso(event.time_ms),
        "context": {"library": {"name": "deeployd-streaming", "version": "0.1.0"}},
    }
    if event.user_id is not None:
        message["userId"] = event.user_id
    else:
        message["anonymousId"] = event.anonymous_id
    return message


def encode_mixpanel(event: AnalyticsEvent) -> dict[str, Any]:
    return {
        "event": event.name,
        "properties": {
            **event.properties,
            "time": event.time_ms,
            "distinct_id": event.user_id or "",
            "$insert_id": event.insert_id,
        },
    }


def encode_amplitude(event: AnalyticsEvent) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "event_type": event.name,
        "time": event.time_ms,
        "insert_id": event.insert_id,
        "event_properties": event.properties,
    }
    if event.user_id is not None:
        encoded["user_id"] = event.user_id
    else:
        encoded["device_id"] = event.anonymous_id
    return encoded


def encode_custom(event: AnalyticsEvent) -> dict[str, Any]:
    return {
        "event": event.name,
        "distinctId": event.user_id,
        "timestamp": _iso(event.time_ms),
        "messageId": event.insert_id,
        "properties": event.properties,
    }


ENCODERS: dict[str, Callable[[AnalyticsEvent], dict[str, Any]]] = {
    "segment": encode_segment,
    "mixpanel": encode_mixpanel,
    "amplitude": encode_amplitude,
    "custom": encode_custom,
}


def _size(obj: Any) -> int:
    return len(json.dumps(obj, separators=(",", ":"), default=str).encode())


def chunk(
    provider: str,
    encoded: list[tuple[AnalyticsEvent, dict[str, Any]]],
    too_big: list[tuple[AnalyticsEvent, str]] | None = None,
) -> list[list[tuple[AnalyticsEvent, dict[str, Any]]]]:
    """Split into requests that respect the provider's count and size limits. An event over the
    per-event limit goes to `too_big` with the reason (or fails the batch without it)."""
    max_events = MAX_EVENTS_PER_REQUEST[provider]
    max_bytes = SEGMENT_MAX_BATCH_BYTES - 1024 if provider == "segment" else MAX_BODY_BYTES
    chunks: list[list[tuple[AnalyticsEvent, dict[str, Any]]]] = []
    current: list[tuple[AnalyticsEvent, dict[str, Any]]] = []
    current_bytes = 0
    for event, body in encoded:
        size = _size(body) + 1
        limit = SEGMENT_MAX_MESSAGE_BYTES if provider == "segment" else max_bytes
        if size > limit:
            why = (
                f"{provider}: the event for offsets {event.first_offset}-{event.last_offset} is "
                f"{size} bytes, over the provider's limit of {limit} bytes per event"
            )
            if too_big is None:
                raise DeliveryError(why, retryable=False)
            too_big.append((event, why))
            continue
        if current and (len(current) >= max_events or current_bytes + size > max_bytes):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append((event, body))
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks


# ---------------------------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------------------------


def retry_after(response: httpx.Response, default: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date)."""
    header = response.headers.get("retry-after")
    if not header:
        return default
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return default
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Sender:
    """One delivery's HTTP conversation with one provider."""

    def __init__(self, ctx: DeliveryContext, cfg: AnalyticsConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.provider = cfg.provider
        self._secrets = [
            s
            for s in (
                cfg.write_key,
                cfg.project_token,
                cfg.api_key,
                cfg.service_account_secret,
            )
            if s
        ]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:500]

    def endpoint(self) -> str:
        if self.provider == "custom":
            assert self.cfg.url is not None
            return self.cfg.url
        base = (self.cfg.base_url or DEFAULT_BASE_URLS[self.provider]).rstrip("/")
        path = {"segment": "/v1/batch", "mixpanel": "/import", "amplitude": "/2/httpapi"}
        return base + path[self.provider]

    async def post(self, bodies: list[dict[str, Any]], first: int, last: int) -> httpx.Response:
        url = self.endpoint()
        try:
            await check_outbound_url(url, allow_private=self.ctx.settings.allow_private_urls)
        except UnsafeURLError as exc:
            raise DeliveryError(f"{self.provider}: {exc}", retryable=False) from None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        auth: httpx.BasicAuth | None = None
        params: dict[str, str] = {}
        payload: Any
        if self.provider == "segment":
            auth = httpx.BasicAuth(self.cfg.write_key or "", "")
            payload = {"batch": bodies, "sentAt": _iso(int(datetime.now(UTC).timestamp() * 1000))}
        elif self.provider == "mixpanel":
            params["strict"] = "1"
            if self.cfg.project_token:
                auth = httpx.BasicAuth(self.cfg.project_token, "")
            else:
                auth = httpx.BasicAuth(
                    self.cfg.service_account_username or "",
                    self.cfg.service_account_secret or "",
                )
            if self.cfg.project_id:
                params["project_id"] = self.cfg.project_id
            payload = bodies
        elif self.provider == "amplitude":
            # Amplitude rejects ids shorter than 5 characters unless told otherwise; agent ids
            # and user ids from a pipeline may be short, and they are still ids.
            payload = {
                "api_key": self.cfg.api_key,
                "events": bodies,
                "options": {"min_id_length": 1},
            }
        else:
            headers.update(self.cfg.headers or {})
            headers["Idempotency-Key"] = dedup_id(self.ctx.pipeline_id, first, last, None, 0)
            payload = bodies
        try:
            return await self.ctx.http.post(
                url,
                content=json.dumps(payload, separators=(",", ":"), default=str),
                headers=headers,
                params=params,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=REQUEST_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"{self.provider}: {type(exc).__name__}: {self._redact(str(exc))}", retryable=True
            ) from None

    def fail(self, response: httpx.Response, default_retry: float | None = None) -> DeliveryError:
        status = response.status_code
        text = self._redact(response.text)
        message = f"{self.provider} answered HTTP {status}: {text}"
        if status in (408, 429) or status >= 500:
            return DeliveryError(
                message, retryable=True, retry_after_s=retry_after(response, default_retry)
            )
        return DeliveryError(message, retryable=False)

    async def send(
        self, chunk_: list[tuple[AnalyticsEvent, dict[str, Any]]]
    ) -> list[tuple[AnalyticsEvent | None, str]]:
        """Send one chunk; returns the events the provider permanently refused, with why (the
        event is None when the provider did not say which one)."""
        first, last = chunk_[0][0].first_offset, chunk_[-1][0].last_offset
        response = await self.post([body for _, body in chunk_], first, last)
        status = response.status_code
        if 200 <= status < 300:
            return []
        if status == 413 and len(chunk_) > 1:
            half = len(chunk_) // 2
            return await self.send(chunk_[:half]) + await self.send(chunk_[half:])
        if status == 400 and self.provider == "mixpanel":
            return self._mixpanel_rejections(response, chunk_)
        if status == 400 and self.provider == "amplitude":
            return await self._amplitude_rejections(response, chunk_)
        if refuses_content(status):
            # Segment and custom receivers refuse a whole request for one bad event (nothing of
            # it was ingested): halve it until the bad event stands alone.
            if len(chunk_) > 1:
                half = len(chunk_) // 2
                return await self.send(chunk_[:half]) + await self.send(chunk_[half:])
            event = chunk_[0][0]
            return [
                (event, f"{self.provider} answered HTTP {status}: {self._redact(response.text)}")
            ]
        default = AMPLITUDE_THROTTLE_S if self.provider == "amplitude" and status == 429 else None
        raise self.fail(response, default)

    def _mixpanel_rejections(
        self, response: httpx.Response, chunk_: list[tuple[AnalyticsEvent, dict[str, Any]]]
    ) -> list[tuple[AnalyticsEvent | None, str]]:
        # strict=1: valid records were imported; the failed ones will fail again on any retry.
        body = _json(response)
        failed = body.get("failed_records") if isinstance(body, dict) else None
        if not isinstance(failed, list) or not failed:
            raise self.fail(response)
        out: list[tuple[AnalyticsEvent | None, str]] = []
        for record in failed:
            index = record.get("index")
            where = ""
            event = None
            if isinstance(index, int) and 0 <= index < len(chunk_):
                event = chunk_[index][0]
                where = f"offsets {event.first_offset}-{event.last_offset}: "
            out.append((event, f"{where}{record.get('field')}: {record.get('message')}"))
        return out

    async def _amplitude_rejections(
        self, response: httpx.Response, chunk_: list[tuple[AnalyticsEvent, dict[str, Any]]]
    ) -> list[tuple[AnalyticsEvent | None, str]]:
        # Amplitude refuses the whole request but names the bad events by index: per its docs,
        # drop those and resend the rest (they were not ingested).
        body = _json(response)
        bad: dict[int, str] = {}
        if isinstance(body, dict):
            for key in (
                "events_with_invalid_fields",
                "events_with_missing_fields",
                "events_with_invalid_id_lengths",
            ):
                for field, indices in (body.get(key) or {}).items():
                    for index in indices or []:
                        if isinstance(index, int) and 0 <= index < len(chunk_):
                            bad.setdefault(index, f"{key.removeprefix('events_with_')}: {field}")
            for index in body.get("silenced_events") or []:
                if isinstance(index, int) and 0 <= index < len(chunk_):
                    bad.setdefault(index, "silenced device")
        if not bad:
            raise self.fail(response)
        rest = [entry for i, entry in enumerate(chunk_) if i not in bad]
        refused: list[tuple[AnalyticsEvent | None, str]] = [
            (
                chunk_[i][0],
                f"offsets {chunk_[i][0].first_offset}-{chunk_[i][0].last_offset}: {why}",
            )
            for i, why in sorted(bad.items())
        ]
        if rest:
            refused += await self.send(rest)
        return refused


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


async def _pipeline_name(ctx: DeliveryContext) -> str:
    async with ctx.db.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT name FROM pipelines WHERE id = %s AND org_id = %s",
            (ctx.pipeline_id, ctx.org_id),
        )
        row = await cursor.fetchone()
    return str(row[0]) if row else ctx.pipeline_id


class AnalyticsDestination(ConfiguredDestination[AnalyticsConfig]):
    type = "analytics"

    def parse(self, config: dict[str, Any]) -> AnalyticsConfig:
        return parse_config(config)

    async def send(self, ctx: DeliveryContext, cfg: AnalyticsConfig, delivery: Delivery) -> None:
        items = delivery.items
        name = ctx.pipeline_id
        if any(
            event_name(cfg, i.value if isinstance(i.value, dict) else {})[0] is None for i in items
        ):
            name = await _pipeline_name(ctx)
        events = to_events(cfg, ctx.pipeline_id, name, items)
        encoder = ENCODERS[cfg.provider]
        sender = _Sender(ctx, cfg)
        by_event = {id(e): item for e, item in zip(events, items, strict=True)}
        too_big: list[tuple[AnalyticsEvent, str]] = []
        unnamed: list[str] = []
        parts = chunk(cfg.provider, [(e, encoder(e)) for e in events], too_big)
        for event, why in too_big:
            reject(ctx, delivery, by_event[id(event)], why)
        for part in parts:
            answer = await sender.send(part)
            refused = {id(e): why for e, why in answer if e is not None}
            unnamed += [why for e, why in answer if e is None]
            for event, _ in part:
                item = by_event[id(event)]
                if id(event) in refused:
                    # Refused for what it holds: any retry would be refused again.
                    reject(ctx, delivery, item, refused[id(event)])
                elif ctx.progress is not None:
                    ctx.progress(item)
        if unnamed:
            # The provider refused events without saying which: the batch cannot be split.
            raise DeliveryError(
                f"{cfg.provider} refused {len(unnamed)} event(s): " + "; ".join(unnamed[:5]),
                retryable=False,
            )


register_destination(AnalyticsDestination())
