"""The destination interface: where a pipeline's transformed items go.

A destination validates its config at create/update time (`validate`, raising ConfigError with a
loc relative to the destination body, e.g. ("config", "url")) and delivers batches in the worker
(`deliver`, raising DeliveryError). `${secrets.X}` references in the config are resolved by the
caller — only in the worker, right before delivery — so `deliver` sees real values and `validate`
sees references.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

import httpx

from deeployd.netguard import UnsafeURLError, check_url_syntax
from deeployd.pipelines.transforms.errors import ConfigError
from deeployd.registry import Registry

if TYPE_CHECKING:
    from deeployd.db import Database
    from deeployd.pipelines.transforms import OutItem
    from deeployd.settings import Settings


def choice(config: Any, key: str, choices: Sequence[str], what: str) -> str:
    """The destination config's `key`, which must be one of `choices` (it selects the rest of
    the schema, so it is checked first)."""
    if not isinstance(config, dict):
        raise ConfigError(("config",), "must be an object")
    value = config.get(key)
    if value not in choices:
        raise ConfigError(
            ("config", key), f"unknown {what} {value!r}; expected one of {', '.join(choices)}"
        )
    return str(value)


def check_target_url(url: str | None, loc: Sequence[str | int]) -> None:
    """The syntax of a target URL written in the config (a secret reference is checked once
    resolved, in the worker)."""
    if url and "${secrets." not in url:
        try:
            check_url_syntax(url)
        except UnsafeURLError as exc:
            raise ConfigError(loc, str(exc)) from None


@dataclass
class DeliveryContext:
    org_id: str
    pipeline_id: str
    config: dict[str, Any]  # `${secrets.X}` already resolved
    http: httpx.AsyncClient
    settings: Settings
    db: Database
    # Optional: a destination that delivers in several requests calls this for each item the
    # receiver confirmed (any order); a retried attempt then skips the confirmed prefix.
    progress: Callable[[OutItem], None] | None = None


@dataclass
class Delivery:
    items: list[OutItem] = field(default_factory=list)  # in offset order
    # Items this destination cannot take (a value it cannot store, a refusal of that item alone),
    # each with the reason: the caller dead-letters them and counts the rest as delivered.
    rejected: list[tuple[OutItem, str]] = field(default_factory=list)


def reject(ctx: DeliveryContext, delivery: Delivery, item: OutItem, reason: str) -> None:
    """Record a per-item refusal; the item counts as done for a retried attempt (it would be
    refused again), so the confirmed prefix can extend past it."""
    delivery.rejected.append((item, reason))
    if ctx.progress is not None:
        ctx.progress(item)


def unstorable_reason(value: Any) -> str | None:
    """Why PostgreSQL cannot store this JSON value (text and jsonb refuse NUL characters and lone
    surrogates), or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str:
            if "\x00" in v:
                return "a string contains \\u0000 (NUL), which PostgreSQL cannot store"
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return "a string contains a lone UTF-16 surrogate, which PostgreSQL cannot store"
        elif t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
    return None


class DeliveryError(Exception):
    """Delivery failed. `retryable=False` sends the batch straight to dead letters.
    `content_refused`: the receiver refused this request's content only (e.g. HTTP 400/422), so
    a destination sending several items at once may split the request to find the bad item."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after_s: float | None = None,
        content_refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.content_refused = content_refused


# 4xx answers about the endpoint or the credentials, not about the content sent: retrying an item
# on its own cannot help, so they fail the whole batch.
ENDPOINT_STATUSES = frozenset({401, 402, 403, 404, 405, 407, 410, 421})


def refuses_content(status: int) -> bool:
    """A final 4xx that is about what was sent (400, 413, 415, 422, ...)."""
    return 400 <= status < 500 and status not in (408, 429) and status not in ENDPOINT_STATUSES


@runtime_checkable
class Destination(Protocol):
    type: str

    def validate(self, config: dict[str, Any]) -> None: ...

    async def deliver(self, ctx: DeliveryContext, delivery: Delivery) -> None: ...


@runtime_checkable
class ChecksAtCreate(Protocol):
    """A destination that also checks its config against the world when a pipeline is created
    or updated (a table exists...): `check` raises ConfigError located in the destination body."""

    async def check(self, db: Database, org_id: str, config: dict[str, Any]) -> None: ...


C = TypeVar("C")


class ConfiguredDestination(Generic[C]):
    """A destination whose config parses into one object (`parse`, raising ConfigError):
    `validate` parses the config as written, `deliver` parses the resolved one and `send`s a
    non-empty batch with it."""

    type: str

    def parse(self, config: dict[str, Any]) -> C:
        raise NotImplementedError

    def validate(self, config: dict[str, Any]) -> None:
        self.parse(config)

    async def deliver(self, ctx: DeliveryContext, delivery: Delivery) -> None:
        cfg = self.parse(ctx.config)
        if delivery.items:
            await self.send(ctx, cfg, delivery)

    async def send(self, ctx: DeliveryContext, cfg: C, delivery: Delivery) -> None:
        raise NotImplementedError


# Every destination type, by the name used in a pipeline body's `destination.type`. A destination
# module registers one instance with `register_destination`; the package imports the built-ins.
DESTINATIONS: Registry[Destination] = Registry("destination")


def register_destination(dest: Destination) -> None:
    DESTINATIONS.add(dest.type, dest)


def get_destination(type: str) -> Destination:
    """The destination registered under `type`; KeyError if none."""
    dest = DESTINATIONS.find(type)
    if dest is None:
        raise KeyError(type)
    return dest


def destination_types() -> list[str]:
    return sorted(DESTINATIONS.names())
