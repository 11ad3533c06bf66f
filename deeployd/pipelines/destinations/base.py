"""The destination interface: where a pipeline's transformed items go.

A destination validates its config at create/update time (`validate`, raising ConfigError with a
loc relative to the destination body, e.g. ("config", "url")) and delivers batches in the worker
(`deliver`, raising DeliveryError). `${secrets.X}` references in the config are resolved by the
caller — only in the worker, right before delivery — so `deliver` sees real values and `validate`
sees references.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx

if TYPE_CHECKING:
    from deeployd.db import Database
    from deeployd.pipelines.transforms import OutItem
    from deeployd.settings import Settings

try:  # the engine owns ConfigError; until it lands, an identical stand-in keeps this importable
    from deeployd.pipelines.transforms import ConfigError
except ImportError:  # pragma: no cover - only before the transform engine exists
    try:
        from deeployd.pipelines.transforms.errors import ConfigError
    except ImportError:

        class ConfigError(ValueError):  # type: ignore[no-redef]
            def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
                super().__init__(msg)
                self.loc = tuple(loc)
                self.msg = msg


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
    # Kept for compatibility, always 0: the caller itself now leaves out outputs an earlier
    # attempt delivered (it checks they are the same outputs), so `deliver` gets only new ones.
    delivered_through: int = 0


@dataclass
class Delivery:
    items: list[OutItem] = field(default_factory=list)  # in offset order


class DeliveryError(Exception):
    """Delivery failed. `retryable=False` sends the batch straight to dead letters."""

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@runtime_checkable
class Destination(Protocol):
    type: str

    def validate(self, config: dict[str, Any]) -> None: ...

    async def deliver(self, ctx: DeliveryContext, delivery: Delivery) -> None: ...


_REGISTRY: dict[str, Destination] = {}


def register_destination(dest: Destination) -> None:
    _REGISTRY[dest.type] = dest


def get_destination(type: str) -> Destination:
    """The destination registered under `type`; KeyError if none."""
    from deeployd.pipelines import destinations  # noqa: F401  (registers the built-ins)

    return _REGISTRY[type]


def destination_types() -> list[str]:
    from deeployd.pipelines import destinations  # noqa: F401

    return sorted(_REGISTRY)


__all__ = [
    "ConfigError",
    "Delivery",
    "DeliveryContext",
    "DeliveryError",
    "Destination",
    "destination_types",
    "get_destination",
    "register_destination",
]
